#!/bin/bash
# Several training recipes at once on one GPU, same steps and batch (the GPU recipe of
# gpu_session.sh: batch 32, 3 batch workers each), packed into $OUT/runs_sweep.tar.
# Usage: bash benchmarks/gpu_sweep.sh STEPS MAX_MIN RECIPES_FILE
#   RECIPES_FILE: one "name extra-train-arguments..." line per run.
set -u
STEPS=${1:?steps}
MAX_MIN=${2:?minutes}
RECIPES=${3:?recipes file}
OUT=${OUT:-runs/gpu_out}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
PY=${PY:-python3}
mkdir -p "$OUT" runs
START=$(date +%s)
# shellcheck source=benchmarks/gpu_common.sh
source "$(dirname "$0")/gpu_common.sh"
names=()
while read -r name args; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  names+=("runs/$name")
  # shellcheck disable=SC2086
  launch_training "$name" "$STEPS" $((${MAX_MIN%.*} * 60 + 90)) --synthetic 300 \
    --checkpoint-every 500 $args --max-minutes "$MAX_MIN"
done <"$RECIPES"
wait
echo "== $(($(date +%s) - START)) s: ${#names[@]} runs done"
for run in "${names[@]}"; do tail -1 "$run.out"; done
tar -cf "$OUT/runs_sweep.tar" "${names[@]}" "${names[@]/%/.out}"
