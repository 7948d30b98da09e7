# Sourced by gpu_session.sh and gpu_sweep.sh: the GPU training recipe's shared options and the
# launcher of one background training run. Needs $PY.
GPU_COMMON=(--batch 32 --crop 192 256 --width 24 --fine-width 64 --half-width 8 --skimage
  --device "${DEVICE:-cuda}" --data-workers 3 --threads 1 --log-every 25)

# launch_training NAME STEPS LIMIT_S ARGS...: `tpr-vo train` into runs/NAME (log runs/NAME.out)
# in the background, killed after LIMIT_S seconds.
launch_training() {
  local name=$1 steps=$2 limit_s=$3
  shift 3
  timeout "$limit_s" $PY -m tpr_vo train --out "runs/$name" --steps "$steps" "${GPU_COMMON[@]}" \
    "$@" >"runs/$name.out" 2>&1 &
}
