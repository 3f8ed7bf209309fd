#!/usr/bin/env bash
# Porian et al. 2024's walk on our own runs (issue 13, item 5; docs/study.md): from Kaplan's setup
# to the tuned Chinchilla protocol, one change at a time, a (N_opt ~ C^a) with its interval after
# each step. Steps 1-2 refit runs/reference/kaplan; step 4 reads the tuned study's first four
# budgets (seed 0); steps 3 and 5 train two self-centring IsoFLOP studies on the same budgets.
# Resumable (every sweep skips finished runs); writes analysis/reference/walk/.
#
#   scripts/porian_walk.sh            # needs runs/reference/{kaplan,lr,isoflop_adaptive}
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-runs/reference}
OUT=${OUT:-analysis/reference/walk}
JOBS=${JOBS:-2}
BOOT=${BOOT:-200}
SCALING=${SCALING:-scaling}
BUDGETS="[1.0e+11,2.0e+11,5.0e+11,1.0e+12]"
KAPLAN_MIN_D=2.5e5   # the early curve points dropped, as the reference study's Kaplan report
mkdir -p "$OUT"

walk_sweep() {  # walk_sweep NAME OVERRIDE...: self-centring budgets into $RUNS/walk/NAME
  local name=$1; shift
  "$SCALING" sweep sweep=isoflop_adaptive runs_dir="$RUNS/walk" "sweep.name=$name" \
    "sweep.adaptive.budgets=$BUDGETS" sweep.report=false hydra/launcher=joblib \
    "hydra.launcher.n_jobs=$JOBS" "$@"
}
walk_sweep lr3e-3 train.lr=3e-3
walk_sweep tuned_warmup_beta2 "train.lr_fit=$RUNS/lr/tuned.json" train.warmup_frac=auto \
  train.beta2=0.99

step() {  # step FILE PATH... [OPTION...]: scaling fit --json into $OUT/FILE.json
  local file=$1; shift
  echo "== $file $(date +%T)"
  "$SCALING" fit "$@" --bootstrap "$BOOT" --json "$OUT/$file.json" > "$OUT/.$file.txt.tmp"
  mv "$OUT/.$file.txt.tmp" "$OUT/$file.txt"
}
adaptive=()
for C in C1e11 C2e11 C5e11 C1e12; do adaptive+=("$RUNS/isoflop_adaptive/$C"); done
step 1_kaplan "$RUNS/kaplan" --curve-points --query "D >= $KAPLAN_MIN_D" --n N_nonembed --c C_kaplan
step 2_counting "$RUNS/kaplan" --curve-points --query "D >= $KAPLAN_MIN_D"
step 3_schedule "$RUNS/walk/lr3e-3"
step 4_tuned_lr "${adaptive[@]}" --query "seed == 0"
step 5_warmup_beta2 "$RUNS/walk/tuned_warmup_beta2"
"${PYTHON:-python3}" scripts/walk_table.py "$OUT"   # PYTHON: one with matplotlib (the venv)
