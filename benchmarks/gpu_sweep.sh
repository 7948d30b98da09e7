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
COMMON=(--batch 32 --crop 192 256 --width 24 --fine-width 64 --half-width 8 --skimage
  --synthetic 300 --device "${DEVICE:-cuda}" --data-workers 3 --threads 1 --log-every 25
  --checkpoint-every 500)
names=()
while read -r name args; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  names+=("runs/$name")
  # shellcheck disable=SC2086
  timeout $((${MAX_MIN%.*} * 60 + 90)) $PY -m tpr_vo train --out "runs/$name" --steps "$STEPS" \
    "${COMMON[@]}" $args --max-minutes "$MAX_MIN" >"runs/$name.out" 2>&1 &
done <"$RECIPES"
wait
echo "== $(($(date +%s) - START)) s: ${#names[@]} runs done"
for run in "${names[@]}"; do tail -1 "$run.out"; done
tar -cf "$OUT/runs_sweep.tar" "${names[@]}" "${names[@]/%/.out}"
