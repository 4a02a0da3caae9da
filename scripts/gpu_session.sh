#!/usr/bin/env bash
# All the GPU work in ONE command of at most 8 minutes (docs/profiling.md, "The GPU session").
#
# On the machine with the GPU, from the repository root:
#   bash scripts/gpu_session.sh                 # writes 5 files under $OUT
# On a machine without one (the test suite does this), the same steps on the CPU backend
# with tiny models, to check the plumbing end to end:
#   bash scripts/gpu_session.sh --cpu-dry-run
# Before a GPU session, once, on a machine with network access (simpy is not on the GPU
# image and the GPU machine has no network; .whl/ is git-ignored and travels with `carry`):
#   bash scripts/gpu_session.sh --fetch-wheels
#
# Steps (each with its own budget; a step that runs out is cut, recorded, and the next
# one starts): device check, solo, pairs, transfers, kernels, then validate --live for
# fifo and strait at a moderate and an intense load. Budgets and settings live in
# strait_sim/profiler/gpu_session.py. Nothing here changes clocks, power limits, MIG or
# MPS, and nothing is installed from the network.
#
# Environment: OUT (folder for the packed files; default runs/gpu-session-<UTC time>),
# PYTHON (default: python3 on the GPU machine, .venv/bin/python for the dry run), GPU (0),
# STRAIT_SESSION_LINK_FARM=1 (import the package from a link farm even where it is
# installed: the dry-run test uses it so the GPU machine's import path is the one tested).
# Any other arguments go to `python -m strait_sim.profiler.gpu_session` (e.g. --budget
# solo=60, --total-s 300).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

mode=gpu
if [[ ${1:-} == --fetch-wheels ]]; then
  mkdir -p .whl
  exec "${PYTHON:-python3}" -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation py --platform any -d .whl "simpy==4.1.2"
fi
if [[ ${1:-} == --cpu-dry-run ]]; then mode=cpu-dry-run; shift; fi

if [[ -n ${PYTHON:-} ]]; then PY=$PYTHON
elif [[ $mode == gpu ]]; then PY=python3
else PY=.venv/bin/python
fi
OUT=${OUT:-runs/gpu-session-$(date -u +%Y%m%dT%H%M%SZ)}
[[ $OUT == /* ]] || OUT=$root/$OUT
[[ $PY == */* && $PY != /* ]] && PY=$root/$PY
work=$(mktemp -d "${TMPDIR:-/tmp}/strait-gpu-session.XXXXXX")
site=$work/site
mkdir -p "$site"
# Python runs from the scratch folder: in the repository root, its strait_sim/ folder
# (without profiler/, policies/, workloads/) would shadow the package for `-c` and `-m`.
cd "$work"

say() { echo "gpu_session.sh: $*" >&2; }

# simpy: the simulator's one dependency that the GPU image lacks; from .whl/, never the network
if ! "$PY" -c "import simpy" 2>/dev/null || [[ ${STRAIT_SESSION_FORCE_WHEELS:-0} == 1 ]]; then
  shopt -s nullglob
  wheels=("$root"/.whl/simpy-*.whl)
  shopt -u nullglob
  if [[ ${#wheels[@]} -eq 0 ]]; then
    say "simpy is not importable and no .whl/simpy-*.whl is here; run" \
        "'bash scripts/gpu_session.sh --fetch-wheels' where pip has network, and carry .whl"
    exit 2
  fi
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" \
    "${wheels[@]}" || { say "installing ${wheels[*]} failed"; exit 2; }
fi

# strait_sim: installed (the development venv) or, on the GPU image, a link farm that
# mirrors the package layout of pyproject.toml (strait_sim.profiler = profiler/, ...)
if [[ ${STRAIT_SESSION_LINK_FARM:-0} == 1 ]] || ! "$PY" -c "import strait_sim.profiler.zoo" 2>/dev/null; then
  mkdir -p "$site/strait_sim"
  for entry in "$root"/strait_sim/*; do ln -s "$entry" "$site/strait_sim/$(basename "$entry")"; done
  ln -s "$root/policies" "$site/strait_sim/policies"
  ln -s "$root/workloads" "$site/strait_sim/workloads"
  ln -s "$root/profiler" "$site/strait_sim/profiler"
fi
export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
"$PY" -c "import simpy, strait_sim.profiler.zoo" \
  || { say "cannot import strait_sim and simpy with $PY (PYTHONPATH=$PYTHONPATH)"; exit 2; }

status=0
"$PY" -m strait_sim.profiler.gpu_session --mode "$mode" --gpu "${GPU:-0}" --out "$OUT" \
  --work "$work" "$@" || status=$?
if [[ $status -eq 0 ]]; then rm -rf "$work"; else say "scratch kept: $work"; fi
exit $status
