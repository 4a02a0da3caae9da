#!/usr/bin/env bash
# GPU calibration: measure the bundled H100 profile in short, resumable steps.
#
# Usage (from the repository root, on the machine with the GPU):
#   scripts/gpu_calibrate.sh check        # GPU, torch build, nvidia-ml-py, ncu: what is there
#   scripts/gpu_calibrate.sh solo         # ~1-2 min: solo latency, 6 models x 6 batch sizes
#   scripts/gpu_calibrate.sh pairs        # <= ~5 min per call; call again to extend the sample
#   scripts/gpu_calibrate.sh transfers    # ~1-2 min: PCIe copies 4 KiB..256 MiB
#   scripts/gpu_calibrate.sh kernels      # ~2-4 min: one traced forward per (model, batch)
#   scripts/gpu_calibrate.sh utilization  # optional, needs ncu; slow (kernel replay)
#   scripts/gpu_calibrate.sh show         # digest + PNGs into $OUT-plots
#   scripts/gpu_calibrate.sh all          # every step above in order
#
# Every step appends to the same bundle folder and skips what it already holds, so a step
# cut short by a time limit (each is wrapped in `timeout $STEP_TIMEOUT`) is simply run
# again. Nothing here changes clocks, power limits, MIG or MPS: do not either while it runs
# (see docs/profiling.md, "What not to do while profiling").
#
# Environment: PYTHON (default: .venv/bin/python if it has CUDA torch, else python3),
# OUT (default strait_sim/profiles/h100-sxm-fp16), GPU (default 0), STEP_TIMEOUT (540 s),
# PAIR_BUDGET_S (240 s of pair measurements per `pairs` call).
set -euo pipefail

OUT=${OUT:-strait_sim/profiles/h100-sxm-fp16}
GPU=${GPU:-0}
STEP_TIMEOUT=${STEP_TIMEOUT:-540}
PAIR_BUDGET_S=${PAIR_BUDGET_S:-240}
MODELS=${MODELS:-resnet50,mobilenet_v2,vgg16,densenet121,efficientnet_b0,bert_base}
BATCHES=${BATCHES:-1,2,4,8,16,32}

pick_python() {
  if [[ -n "${PYTHON:-}" ]]; then echo "$PYTHON"; return; fi
  for p in .venv/bin/python python3 python; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
      echo "$p"; return
    fi
  done
  echo "error: no Python with a CUDA build of torch found (set PYTHON=...)" >&2
  exit 2
}
PY=$(pick_python)
SIM=("$PY" -m strait_sim.cli.app)
COMMON=(--gpu "$GPU" --out "$OUT" --models "$MODELS" --batches "$BATCHES" --precision fp16
        --note "GPU calibration via scripts/gpu_calibrate.sh (commands in sessions[].command)")

step() {  # step NAME ARGS...: one resumable part under a time limit
  local name=$1; shift
  echo "== $name: ${SIM[*]} profile ${COMMON[*]} $*"
  local t0=$SECONDS rc=0
  timeout --signal=INT "$STEP_TIMEOUT" "${SIM[@]}" profile "${COMMON[@]}" "$@" || rc=$?
  echo "== $name: exit $rc after $((SECONDS - t0)) s (124/130: cut short; run the step again to resume)"
  return 0
}

case "${1:-all}" in
  check)
    nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.limit,mig.mode.current,compute_mode --format=csv || true
    nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv || true
    "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))'
    "$PY" -c 'import pynvml; print("nvidia-ml-py ok")' || echo "nvidia-ml-py missing: clocks/driver not recorded (pip install nvidia-ml-py)"
    command -v ncu && ncu --version || echo "ncu not found: utilization will be skipped"
    ;;
  solo)        step solo --only solo --reps 30 --warmup 5 ;;
  pairs)       step pairs --only pairs --pair-reps 5 --offsets 0,0.25,0.5,0.75 --budget-s "$PAIR_BUDGET_S" ;;
  transfers)   step transfers --only transfers --transfer-reps 5 --max-transfer-mib 256 ;;
  kernels)     step kernels --only kernels --kernel-rows 200 ;;
  utilization) step utilization --only utilization ;;
  show)        "${SIM[@]}" profile show "$OUT" --plots "$OUT-plots" ;;
  all)
    "$0" check; "$0" solo; "$0" pairs; "$0" transfers; "$0" kernels; "$0" show ;;
  *) echo "usage: $0 check|solo|pairs|transfers|kernels|utilization|show|all" >&2; exit 2 ;;
esac
