#!/usr/bin/env bash
# Re-measure the bundled CPU profile (strait_sim/profiles/cpu-epyc2-fp32) with the current zoo.
#
# Why: the bundle was measured with the first, hand-written zoo; the zoo's models are now
# transformers' classes and torchvision's definitions (docs/profiling.md, "The model zoo"),
# so live runs refuse the old bundle (its models.csv has no architecture fingerprints and
# the hand-written fingerprints differ). Simulations on it still work.
#
# Run it on the QUIET development machine (nothing else running: the timings are the
# profile). About 9 minutes on the 2-vCPU AMD EPYC VM (an estimate: the old bundle's
# 603 s with 90 s less for pairs); it refuses to start when the CPU is busy (the live busy
# check), unless BUSY_CHECK=0.
#
#   experiments/remeasure_cpu_profile.sh
#
# It profiles into a scratch folder, checks the result (loadable; every model measured,
# with the zoo's fingerprint), and only then replaces the six files of the target bundle.
# On any failure the target is left as it was and the scratch folder is named on stderr.
#
# Environment (the defaults are the bundled profile's settings):
#   TARGET         bundle folder to replace (default strait_sim/profiles/cpu-epyc2-fp32)
#   MODELS         default: the models the target bundle lists (the bundled profile's six:
#                  resnet50, mobilenet_v2, vgg16, densenet121, efficientnet_b0, bert_base,
#                  now the zoo's definitions), so every doc that names them stays valid;
#                  the zoo's DEFAULT_MODELS where the target has no models.csv
#   BATCHES (1,2,4)  REPS (6)  PAIR_REPS (2)  OFFSETS (0,0.25,0.5,0.75)  PAIR_BUDGET_S (450)
#   TRANSFER_REPS (3)  MAX_TRANSFER_MIB (64)  KERNEL_ROWS (120)  PYTHON (.venv/bin/python)
#   BUSY_CHECK (1)  NOTE (an extra line for profile.json notes)
# Tests run it at tiny scale (tests/test_gpu_session.py) with TARGET in a temporary folder.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-.venv/bin/python}
TARGET=${TARGET:-strait_sim/profiles/cpu-epyc2-fp32}
MODELS=${MODELS:-$("$PY" -c '
import sys, pathlib, pandas as pd
from strait_sim.profiler.zoo import DEFAULT_MODELS
f = pathlib.Path(sys.argv[1]) / "models.csv"
print(",".join(pd.read_csv(f)["model"].astype(str)) if f.is_file() else ",".join(DEFAULT_MODELS))
' "$TARGET")}
BATCHES=${BATCHES:-1,2,4}
REPS=${REPS:-6}
PAIR_REPS=${PAIR_REPS:-2}
OFFSETS=${OFFSETS:-0,0.25,0.5,0.75}
PAIR_BUDGET_S=${PAIR_BUDGET_S:-450}
TRANSFER_REPS=${TRANSFER_REPS:-3}
MAX_TRANSFER_MIB=${MAX_TRANSFER_MIB:-64}
KERNEL_ROWS=${KERNEL_ROWS:-120}
BUSY_CHECK=${BUSY_CHECK:-1}
FILES=(profile.json models.csv solo.csv pairs.csv transfers.csv kernels.csv)

if [[ $BUSY_CHECK != 0 ]]; then
  "$PY" - <<'EOF' || exit 2
import sys
from strait_sim.errors import UserError
from strait_sim.live.busy_check import check_device_idle
try:
    check_device_idle("cpu", None, threshold=None, force=False)
except UserError as exc:
    why = str(exc).split(": live latencies")[0]  # its advice (--force) is the live runs'
    print(f"remeasure: refused: {why}; a profile taken now would time the other work too "
          "(BUSY_CHECK=0 skips this check)", file=sys.stderr)
    sys.exit(2)
EOF
fi

scratch=$(mktemp -d "${TMPDIR:-/tmp}/remeasure-cpu.XXXXXX")
bundle="$scratch/$(basename "$TARGET")"
started=$(date -u +%Y-%m-%dT%H:%MZ)
echo "remeasure: profiling into $bundle (started $started)" >&2
"$PY" -m strait_sim.cli.app profile --cpu --force --out "$bundle" --models "$MODELS" \
  --batches "$BATCHES" --reps "$REPS" --warmup 2 --pair-reps "$PAIR_REPS" --offsets "$OFFSETS" \
  --budget-s "$PAIR_BUDGET_S" --transfer-reps "$TRANSFER_REPS" \
  --max-transfer-mib "$MAX_TRANSFER_MIB" --kernel-rows "$KERNEL_ROWS" \
  --note "Re-measured with the zoo of transformers classes and torchvision-faithful definitions by experiments/remeasure_cpu_profile.sh (started $started on $(hostname), CPU busy check $([[ $BUSY_CHECK != 0 ]] && echo passed || echo skipped) at start; load averages in sessions[])." \
  ${NOTE:+--note "$NOTE"} \
  || { echo "remeasure: profiling failed; $TARGET left as it was; partial bundle in $bundle" >&2; exit 1; }

"$PY" - "$bundle" "$MODELS" <<'EOF' || { echo "remeasure: $TARGET left as it was; checked bundle in $bundle" >&2; exit 1; }
import sys
from strait_sim.profile_bundle import read_bundle_dir
from strait_sim.profiler.model_fingerprint import model_mismatches
from strait_sim.profiler.zoo import model_registry
bundle = read_bundle_dir(sys.argv[1])
models = sys.argv[2].split(",")
missing = sorted(set(models) - set(bundle.model_names))
problems = model_mismatches(bundle, models, model_registry())
for line in ([f"models not measured: {', '.join(missing)}"] if missing else []) + problems:
    print(f"remeasure: {line}", file=sys.stderr)
sys.exit(1 if missing or problems else 0)
EOF

for f in "${FILES[@]}"; do
  [[ -f $bundle/$f ]] || { echo "remeasure: $bundle/$f missing; $TARGET left as it was" >&2; exit 1; }
done
mkdir -p "$TARGET"
for f in "${FILES[@]}"; do
  cp "$bundle/$f" "$TARGET/$f.new"
done
for f in "${FILES[@]}"; do
  mv "$TARGET/$f.new" "$TARGET/$f"
done
rm -r "$scratch"
echo "remeasure: replaced ${FILES[*]} in $TARGET; see: strait-sim profile show $TARGET" >&2
