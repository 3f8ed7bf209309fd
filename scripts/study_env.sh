# Sourced by the study scripts: strict mode, the repository root, `--smoke` (the first argument),
# and where runs and reports go (RUNS, OUT), how many runs at once (JOBS), the command (SCALING).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SMOKE=0
if [[ "${1:-}" == "--smoke" ]]; then SMOKE=1; shift; fi
RUNS=${RUNS:-runs/reference}
OUT=${OUT:-analysis/reference}
JOBS=${JOBS:-2}
SCALING=${SCALING:-scaling}
