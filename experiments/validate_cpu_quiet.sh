#!/usr/bin/env bash
# Fidelity on the development CPU: a same-hour profile, then a replicated validation study
# of fifo, priority and strait at four loads from light to the edge of saturation.
#
# Run it ONLY on a quiet machine (nothing else computing): the profiler and every live run
# refuse a busy CPU (set FORCE=1 to override, and then the figures are not accuracy claims).
#
# Run time on the 2-vCPU development VM: 12-13 minutes (measured 2026-12-01, three runs)
#   profile: solo 2 models x 4 batches x 18 forwards (~15 s), pairs within --budget-s 180,
#            transfers up to 16 MiB x 3 reps (~30 s)                          -> ~4 min
#   study:   3 policies x 4 loads x 3 repeats = 36 cells, each a 15 s live run plus model
#            preparation, simulation and report (~7 s)                       -> ~13-14 min
#   drift probe: a few seconds before the study.
# (MODELS, BATCHES, POLICIES, LOADS, REPEATS, DURATION, PAIR_BUDGET, MAX_BATCH, WORKLOAD and
#  OUT override the defaults; the tiny check run
#  before committing used DURATION=3 REPEATS=2 LOADS=0.4,1.2 POLICIES=fifo FORCE=1.)
#
# Writes: $OUT/profile (the bundle), $OUT/study (study.md, study.json,
# error_vs_load_<policy>.png, one validate folder per cell), $OUT/commands.txt.
set -euo pipefail

STAMP=$(date -u +%Y%m%dT%H%MZ)
OUT=${OUT:-docs/validation/cpu-quiet-$STAMP}
MODELS=${MODELS:-mobilenet_v2,efficientnet_b0}
BATCHES=${BATCHES:-1,2,3,4}
POLICIES=${POLICIES:-fifo,priority,strait}
# offered load as a share of batch-1 solo capacity (--load): with batching up to 4 the
# live device is about 0.2-0.3 busy at 0.4 and close to saturation at 1.6
LOADS=${LOADS:-0.4,0.8,1.2,1.6}
REPEATS=${REPEATS:-3}
DURATION=${DURATION:-15}
PAIR_BUDGET=${PAIR_BUDGET:-180}
MAX_BATCH=${MAX_BATCH:-4}
WORKLOAD=${WORKLOAD:-poisson}
FORCE_FLAG=""
if [ "${FORCE:-0}" = "1" ]; then FORCE_FLAG="--force"; fi
SIM=${STRAIT_SIM:-.venv/bin/strait-sim}

mkdir -p "$OUT"
log() { echo "$*" | tee -a "$OUT/commands.txt"; }

START=$(date +%s)
PROFILE_CMD="$SIM profile --cpu --models $MODELS --batches $BATCHES \
  --only solo,pairs,transfers --reps 15 --pair-reps 4 --budget-s $PAIR_BUDGET \
  --max-transfer-mib 16 --transfer-reps 3 --out $OUT/profile $FORCE_FLAG"
log "# $(date -u +%FT%TZ) profile"
log "$PROFILE_CMD"
$PROFILE_CMD
$SIM profile show "$OUT/profile" --no-plots --calibration "$OUT/profile-calibration.csv" \
  > "$OUT/profile-show.txt"

STUDY_CMD="$SIM validate --live --cpu --policy $POLICIES --profile $OUT/profile \
  --models $MODELS --max-batch $MAX_BATCH --workload $WORKLOAD --duration $DURATION --loads $LOADS --repeats $REPEATS \
  --out $OUT/study $FORCE_FLAG"
log "# $(date -u +%FT%TZ) study"
log "$STUDY_CMD"
$STUDY_CMD
END=$(date +%s)
log "# done in $((END - START)) s at $(date -u +%FT%TZ)"
echo "study: $OUT/study/study.md"
