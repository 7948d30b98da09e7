#!/bin/bash
# Several training recipes at once on one GPU, same steps and batch (the GPU recipe of
# gpu_session.sh: batch 32, 3 batch workers each), each packed into $OUT/NAME.tar (a device
# call returns at most 8 files of 16 MiB: keep a recipes file to 8 runs).
# Usage: bash benchmarks/gpu_sweep.sh STEPS MAX_MIN RECIPES_FILE
#   STEPS: steps of every run, or "auto": a 25 s probe of all recipes together (no warm start,
#     no synthetic or dead-leaves images) fits the steps to MAX_MIN minutes (fit_steps).
#   MAX_MIN: each run stops after this many minutes of training (its images made before).
#   RECIPES_FILE: one "name extra-train-arguments..." line per run.
# DEADLINE_S (optional): stop every run this many seconds after the script started and pack
# what they have (checkpoints every 500 steps), so that a device call's time limit does not
# lose the results. Session 12 lost a whole call without it: its runs outlived the call.
set -u
STEPS=${1:?steps}
MAX_MIN=${2:?minutes}
RECIPES=${3:?recipes file}
OUT=${OUT:-runs/gpu_out}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
PY=${PY:-python3}
mkdir -p "$OUT" runs
START=$(date +%s)
stamp() { echo "== $(($(date +%s) - START)) s: $*"; }
# shellcheck source=benchmarks/gpu_common.sh
source "$(dirname "$0")/gpu_common.sh"
declare -A RECIPE=()
while read -r name args; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  RECIPE[$name]=$args
done <"$RECIPES"
if [[ "$STEPS" == auto ]]; then
  stamp "probe: ${#RECIPE[@]} recipes together, 25 s"
  probe_recipes
  STEPS=$(fit_steps "$MAX_MIN")
fi
LIMIT_S=$((${MAX_MIN%.*} * 60 + 150))
if [[ -n "${DEADLINE_S:-}" ]]; then
  LEFT_S=$((DEADLINE_S - $(date +%s) + START - 20))
  ((LEFT_S < LIMIT_S)) && LIMIT_S=$LEFT_S
fi
stamp "training ${!RECIPE[*]} for $STEPS steps each (limit $MAX_MIN min, killed after $LIMIT_S s)"
names=()
for name in "${!RECIPE[@]}"; do
  names+=("runs/$name")
  # shellcheck disable=SC2086
  launch_training "$name" "$STEPS" "$LIMIT_S" --synthetic 300 \
    --checkpoint-every 500 ${RECIPE[$name]} --max-minutes "$MAX_MIN"
done
wait
stamp "${#names[@]} runs done"
for run in "${names[@]}"; do tail -1 "$run.out"; done
for name in "${!RECIPE[@]}"; do
  tar -cf "$OUT/$name.tar" "runs/$name" "runs/$name.out" $(ls runs/probe_"$name".out 2>/dev/null)
done
stamp "packed: $(du -ch "$OUT"/*.tar | tail -1)"
