#!/usr/bin/env bash
# The reference study under the tuned protocol (issue 13; docs/study.md): per data source, an lr
# sweep, `scaling tune` (lr*(N) for train.lr=auto), then self-centring IsoFLOP budgets with
# lr=auto, each reported into analysis/reference/. Resumable: every step skips finished runs.
#
#   scripts/tuned_study.sh                 # synthetic language and stdlib
#   DATA=synthetic scripts/tuned_study.sh  # one source
#   scripts/tuned_study.sh --smoke         # tiny shapes and budgets into runs/reference-smoke/
#
# Further arguments are Hydra overrides for every sweep (e.g. train.device=cuda).
source "$(dirname "$0")/study_env.sh"   # strict mode, repo root, --smoke, RUNS, OUT, JOBS, SCALING
DATA=${DATA:-synthetic stdlib}
BUDGETS=${BUDGETS:-[1.0e+11,2.0e+11,5.0e+11,1.0e+12,2.0e+12,5.0e+12,1.0e+13]}  # two decades of C
SEEDS=${SEEDS:-3}   # seeds in all at the 3 sizes nearest each budget's N*
SMOKE_ARGS=()
if (( SMOKE )); then
  RUNS=${RUNS%/}-smoke; OUT=$RUNS/analysis; BUDGETS="[4.0e+7,8.0e+7]"
  SMOKE_ARGS=(model.ctx=16 train.batch_size=4 data.val_tokens=256 train.n_evals=2)
fi
COMMON=(hydra/launcher=joblib "hydra.launcher.n_jobs=$JOBS" train.threads=1 "runs_dir=$RUNS")

for data in $DATA; do
  suffix=""; [[ $data == stdlib ]] && suffix=_stdlib
  echo "== lr sweep $data $(date +%T)"
  lr_args=(); (( SMOKE )) && lr_args=(model.size=s1,s2 train.tokens=4096 train.lr=1e-2,3e-2,1e-1,3e-1,1.0)
  "$SCALING" sweep sweep=lr "sweep.name=lr$suffix" "data=$data" sweep.report=false "${COMMON[@]}" \
    ${SMOKE_ARGS[@]+"${SMOKE_ARGS[@]}"} ${lr_args[@]+"${lr_args[@]}"} "$@"
  "$SCALING" tune "$RUNS/lr$suffix" --figures "$OUT/lr$suffix"
  echo "== adaptive IsoFLOP $data $(date +%T)"
  "$SCALING" sweep sweep=isoflop_adaptive "sweep.name=isoflop_adaptive$suffix" "data=$data" \
    "sweep.adaptive.budgets=$BUDGETS" "sweep.adaptive.seeds=$SEEDS" "train.lr_fit=$RUNS/lr$suffix/tuned.json" \
    "sweep.report_dir=$OUT/isoflop_adaptive$suffix" "${COMMON[@]}" ${SMOKE_ARGS[@]+"${SMOKE_ARGS[@]}"} "$@"
done
echo "== done $(date +%T): runs in $RUNS, reports in $OUT"
