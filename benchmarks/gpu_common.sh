# Sourced by gpu_session.sh and gpu_sweep.sh: the GPU training recipe's shared options and the
# launcher of one background training run. Needs $PY; with $EVAL_SET (an HPatches folder) each
# run logs MMA@3 on it at its end.
# Batch 32 is the sessions-9/12 recipe, kept so that their commands mean what they meant; it
# trained worse than the CPU's batch 8 at equal time, so session 14's recipes pass --batch 8
# (sweeps/batch8.txt; later arguments win).
GPU_COMMON=(--batch 32 --crop 192 256 --width 24 --fine-width 64 --half-width 8 --skimage
  --device "${DEVICE:-cuda}" --data-workers 3 --threads 1 --log-every 25
  ${EVAL_SET:+--eval-set "$EVAL_SET"})

# launch_training NAME STEPS LIMIT_S ARGS...: `tpr-vo train` into runs/NAME (log runs/NAME.out)
# in the background, killed after LIMIT_S seconds.
launch_training() {
  local name=$1 steps=$2 limit_s=$3
  shift 3
  timeout "$limit_s" $PY -m tpr_vo train --out "runs/$name" --steps "$steps" "${GPU_COMMON[@]}" \
    "$@" >"runs/$name.out" 2>&1 &
}

# probe_recipes: every entry NAME -> ARGS of the associative array RECIPE as a 25 s training
# into runs/probe_NAME, all at once (no warm start, no synthetic or dead-leaves images, no
# evaluation: only the step rate counts), and wait for them. fit_steps reads their logs.
probe_recipes() {
  local name
  for name in "${!RECIPE[@]}"; do
    # shellcheck disable=SC2086
    launch_training "probe_$name" 100000 90 ${RECIPE[$name]} --warm-start-steps 0 \
      --synthetic 0 --dead-leaves 0 --eval-set "" --max-minutes 0.42 \
      --checkpoint-every 100000 --log-every 10
  done
  wait
}

# fit_steps TRAIN_MIN: the step count (a multiple of 100, at least 500) that fills TRAIN_MIN
# minutes at the slowest step rate of the probe runs (runs/probe_*/log.csv, all run together,
# so the rates include their contention for the CPU and the GPU), less 30 s for the start
# (synthetic rendering, warm start).
fit_steps() {
  $PY - "$1" <<'EOF'
import csv, sys, glob
budget_s = float(sys.argv[1]) * 60 - 30
rates = []
for path in glob.glob("runs/probe_*/log.csv"):
    rows = [r for r in csv.DictReader(open(path))]
    if len(rows) >= 3:
        a, b = rows[1], rows[-1]
        rates.append((float(b["time_s"]) - float(a["time_s"])) / (int(b["step"]) - int(a["step"])))
s_per_step = max(rates) if rates else 0.25
print(max(500, int(0.93 * budget_s / s_per_step) // 100 * 100))
print(f"probe s/step {rates} -> steps", file=sys.stderr)
EOF
}
