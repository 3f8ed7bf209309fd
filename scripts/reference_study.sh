#!/usr/bin/env bash
# The reference study (docs/study.md, issue 9): every sweep of it, two runs at a time (joblib
# launcher, one thread each) into runs/reference/<sweep>/, then `scaling report` of each into
# analysis/reference/<sweep>/ and the Kaplan-versus-Chinchilla fits into
# analysis/reference/kaplan_vs_chinchilla/, and the seed noise of one budget into
# analysis/reference/seeds/. 78 minutes here on 2 free cores (docs/study.md).
#
#   scripts/reference_study.sh            # the study; rerun the same command to resume it
#   scripts/reference_study.sh --smoke    # the same steps at ~1/1000 of the compute (~10 min on a busy machine)
#   RUNS=/scratch/runs OUT=/tmp/analysis JOBS=4 scripts/reference_study.sh
#
# Resumable: a sweep skips its finished runs and resumes a cut one from its checkpoint, so an
# interrupted study continues where it stopped. Any further arguments are Hydra overrides passed to
# every sweep (e.g. train.device=cuda).
source "$(dirname "$0")/study_env.sh"   # strict mode, repo root, --smoke, RUNS, OUT, JOBS, SCALING
BOOT=${BOOT:-200}                          # bootstrap resamples of every report
if (( SMOKE )); then RUNS=${RUNS%/}-smoke; OUT=$RUNS/analysis; BOOT=20; fi   # all under the ignored runs/

# The IsoFLOP budgets: one preset each (conf/sweep/reference_isoflop_<C>.yaml), 5 sizes centred on
# the budget's optimum, each in its own folder $RUNS/isoflop/C<budget>/ (reported together).
BUDGETS=(5e11 1e12 2e12 5e12)
KAPLAN_MIN_D=2.5e5                         # Kaplan's curve points kept: the grid's D range

# Smoke: tiny shapes and budgets/1000, the same presets, folders and reports.
SMOKE_ARGS=()
if (( SMOKE )); then
  SMOKE_ARGS=(model.size=s1,s2,s3 train.batch_size=4 model.ctx=32 data.val_tokens=1024)
  KAPLAN_MIN_D=250
fi
scaled() { python3 -c "import sys; print(f'{float(sys.argv[1]) / (1000 if $SMOKE else 1):g}')" "$1"; }

sweep() {  # sweep ROOT NAME PRESET [OVERRIDE...]: train every missing run of PRESET into ROOT/NAME
  local root=$1 name=$2 preset=$3; shift 3
  echo "== sweep $root/$name ($preset) $(date +%T)"
  "$SCALING" sweep "sweep=$preset" "sweep.name=$name" "runs_dir=$root" sweep.report=false \
    hydra/launcher=joblib "hydra.launcher.n_jobs=$JOBS" train.threads=1 \
    ${SMOKE_ARGS[@]+"${SMOKE_ARGS[@]}"} "$@" ${EXTRA[@]+"${EXTRA[@]}"}
}

report() {  # report NAME [OPTION...]: scaling report of $RUNS/NAME (a sweep, or a folder of sweeps) into $OUT/NAME
  local name=$1; shift
  echo "== report $name $(date +%T)"
  "$SCALING" report "$RUNS/$name" --out "$OUT/$name" --bootstrap "$BOOT" --title "Reference study: $name" "$@"
}

EXTRA=("$@")
smoke_only() { (( SMOKE )) && printf '%s\n' "$@" || true; }

# 1. IsoFLOP on the synthetic language, then on Python's stdlib source (same budgets; the same sizes
# but at 5e12, where stdlib's optimum sits at s3 and the preset's s1, s1h would be far off it)
stdlib_sizes() { [[ $1 == 5e12 ]] && (( ! SMOKE )) && echo model.size=s2,s2h,s3,s4,s5,s6 || true; }
for data in synthetic stdlib; do
  name=isoflop; [[ $data == stdlib ]] && name=isoflop_stdlib
  for C in "${BUDGETS[@]}"; do
    sweep "$RUNS/$name" "C$C" "reference_isoflop_$C" "data=$data" $(smoke_only "train.flops=$(scaled "$C")") \
      $([[ $data == stdlib ]] && stdlib_sizes "$C")
  done
done
# 2. the N x D grid (Chinchilla's protocol) and 3. Kaplan's protocol on the same sizes
sweep "$RUNS" grid reference_grid $(smoke_only train.tokens=250,500,1000,2000,4000)
sweep "$RUNS" kaplan reference_kaplan $(smoke_only train.tokens=4000 protocol.horizon_tokens=20000)
# 4. the three architectures (the preset of docs/architectures.md)
sweep "$RUNS" arch architectures $(smoke_only train.tokens=256,512,1024 model.arch=decoder,encoder)
# 4b. repeated data: stdlib capped at 180K unique bytes, 0.28 to 18 epochs (the data-constrained law)
sweep "$RUNS" epochs_stdlib epochs_stdlib $(smoke_only train.tokens=4096,16384 model.size=s1)
# 5. seed noise: the 1e12 IsoFLOP budget again under seeds 1 and 2 (seed 0 is isoflop/C1e12)
for seed in 1 2; do
  sweep "$RUNS/seeds" "C1e12_seed$seed" reference_isoflop_1e12 "train.seed=$seed" $(smoke_only "train.flops=$(scaled 1e12)")
done

# Reports: one per sweep, then Kaplan's protocol against Chinchilla's. On the synthetic language
# Approach 3 holds E at the language's exact entropy (--fix-E floor): at this scale a free E ends at 0
# (the free fits are kept in $OUT/free_E/ below). stdlib text and the encoder have no known floor.
report isoflop --fix-E floor
report isoflop_stdlib
report grid --fix-E floor
report arch --group arch
report epochs_stdlib --unique unique_tokens
(( SMOKE )) || "$SCALING" tasks "$RUNS/arch" --out "$OUT/arch_tasks"   # task probes (docs/tasks.md)
report kaplan --curve-points --n N_nonembed --c C_kaplan --query "D >= $KAPLAN_MIN_D" --fix-E floor

KVC="$OUT/kaplan_vs_chinchilla"
FREE="$OUT/free_E"
mkdir -p "$KVC" "$FREE"
fit() {  # fit DIR FILE PATH [OPTION...]: scaling fit --json into DIR/FILE.json, its printout into DIR/FILE.txt
  local dir=$1 file=$2; shift 2
  echo "== fit $dir/$file $(date +%T)"
  "$SCALING" fit "$@" --bootstrap "$BOOT" --json "$dir/$file.json" > "$dir/.$file.txt.tmp"
  mv "$dir/.$file.txt.tmp" "$dir/$file.txt"     # the printed fit, replaced in one step
}
# Approach 3 with E fitted, for comparison with the reports' fixed E
fit "$FREE" grid "$RUNS/grid"
fit "$FREE" isoflop "$RUNS/isoflop"
# Kaplan's protocol against Chinchilla's: both parameter counts, Approach 3 with E fixed as above
fit "$KVC" chinchilla_N "$RUNS/grid" --fix-E floor
fit "$KVC" chinchilla_Nnonembed "$RUNS/grid" --n N_nonembed --c C_kaplan --fix-E floor
fit "$KVC" kaplan_N "$RUNS/kaplan" --curve-points --query "D >= $KAPLAN_MIN_D" --fix-E floor
fit "$KVC" kaplan_Nnonembed "$RUNS/kaplan" --curve-points --query "D >= $KAPLAN_MIN_D" --n N_nonembed --c C_kaplan --fix-E floor
python3 - "$KVC" <<'PY'
"""Summary table of the four fits: protocol (rows) x parameter count (columns), a = d log N_opt / d log C."""
import json, os, sys
kvc = sys.argv[1]
def a(file, law):
    with open(os.path.join(kvc, file + ".json")) as f:
        fit = json.load(f).get(law) or {}
    v, ci, status = fit.get("a"), (fit.get("ci") or {}).get("a"), fit.get("status")
    flag = f" ({status})" if status not in (None, "converged") else ""   # e.g. bound-hit: not a clean optimum
    return "-" if v is None else f"{v:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci and None not in ci else "") + flag
lines = ["# Kaplan's protocol against Chinchilla's (a in N_opt ~ C^a)", "",
         "| protocol | law | N (all parameters), C = 6ND | N_nonembed, C_kaplan |", "| --- | --- | --- | --- |"]
for proto in ("chinchilla", "kaplan"):
    for law in ("approach3", "kaplan", "approach1"):
        lines.append(f"| {proto} | {law} | {a(proto + '_N', law)} | {a(proto + '_Nnonembed', law)} |")
lines += ["", "Kaplan's protocol: one run per size, one long schedule, every evaluation a point "
          "(scripts/reference_study.sh); Chinchilla's: the reference_grid sweep, cosine matched to D, "
          "its final losses. approach3 holds E at the synthetic language's exact entropy (--fix-E floor); "
          "approach1 is the lower envelope of the points. A status in brackets: the fit stopped at a "
          "bound, so its value is not a clean optimum (its interval comes from the resamples that converged)."]
tmp = os.path.join(kvc, ".summary.md.tmp")
with open(tmp, "w") as f:
    f.write("\n".join(lines) + "\n")
os.replace(tmp, os.path.join(kvc, "summary.md"))
print("\n".join(lines))
PY
mkdir -p "$OUT/seeds"
python3 scripts/seed_noise.py "$OUT/seeds/summary.md" "$RUNS/isoflop/C1e12" "$RUNS/seeds/C1e12_seed1" "$RUNS/seeds/C1e12_seed2"
echo "== done $(date +%T): runs in $RUNS, reports in $OUT"
