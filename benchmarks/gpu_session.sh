#!/bin/bash
# Everything one short GPU lease is used for, in one call (run from the repo root on the GPU
# machine; its python3 must have torch with CUDA, opencv, scipy, scikit-image, pyyaml, onnx and
# onnxruntime):
#   1. environment report (GPU, torch, whether tensorrt imports);
#   2. torch-CUDA fp32 / TF32 / fp16 parity against ONNX Runtime CPU and network time
#      (benchmarks/gpu_torch_parity.py) on KITTI 06 frames;
#   3. `tpr-vo bench --backend torch` on KITTI 06 (GPU features, ORB in the same run);
#   4. if tensorrt imports: the TensorRT engine build and the gpu-marked tests;
#   5. four trainings at once on the one GPU, same steps and batch: the shipped recipe (kd2),
#      the same with --max-perspective 0.4 (seeds 0 and 1, for the reproduction check), and
#      pure TPR. The step count is fitted to TRAIN_MIN minutes by a short probe of all four
#      running together.
# Usage: bash benchmarks/gpu_session.sh DATA TRAIN_MIN
#   DATA: folder holding kitti/dataset/sequences/06 (image_0, calib.txt, times.txt) and
#   kitti/dataset/poses/06.txt. Results go to $OUT (default runs/gpu_out).
set -u
DATA=${1:?data folder}
TRAIN_MIN=${2:-6}
OUT=${OUT:-runs/gpu_out}
SEQ=$DATA/kitti/dataset/sequences/06
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
PY=${PY:-python3}
mkdir -p "$OUT" runs
START=$(date +%s)
stamp() { echo "== $(($(date +%s) - START)) s: $*"; }

stamp environment
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  $PY -c "import sys, torch; print(sys.version.split()[0], 'torch', torch.__version__, torch.cuda.get_device_name(0))"
  $PY -c "import onnxruntime as o; print('onnxruntime', o.__version__, o.get_available_providers())"
  $PY -c "import tensorrt as t; print('tensorrt', t.__version__)" || echo "tensorrt: not importable"
  echo "cpus $(nproc)"
} 2>&1 | tee "$OUT/env.txt"

stamp "torch-CUDA parity and network time"
timeout 120 $PY benchmarks/gpu_torch_parity.py --frames "$SEQ/image_0" --json "$OUT/gpu_parity.json"

stamp "bench, torch backend on the GPU"
timeout 150 $PY -m tpr_vo bench --backend torch --seq "$SEQ" --frames 48 --json "$OUT/bench_torch_cuda.json" 2>&1 | tail -25

if $PY -c "import tensorrt" 2>/dev/null; then
  stamp "TensorRT: gpu-marked tests"
  TPR_VO_DATA=$DATA timeout 150 $PY -m pytest -q -m gpu test 2>&1 | tail -15
fi

# shellcheck source=benchmarks/gpu_common.sh
source "$(dirname "$0")/gpu_common.sh"
SHIPPED=(--warm-start-steps 100 --infonce 0.5 --peaky-weight 0 --keypoint-distill 2.0
  --cell-pool mean --keypoint-teacher fast)
declare -A RECIPE=(
  [gpu_kd2_s0]="${SHIPPED[*]} --seed 0"
  [gpu_persp_s0]="${SHIPPED[*]} --max-perspective 0.4 --seed 0"
  [gpu_persp_s1]="${SHIPPED[*]} --max-perspective 0.4 --seed 1"
  [gpu_pure_s0]="--cell-pool mean --seed 0"
)

stamp "probe: the recipes together, no warm start, 25 s"
probe_recipes
STEPS=$(fit_steps "$TRAIN_MIN")
stamp "training ${!RECIPE[*]} for $STEPS steps each (limit $TRAIN_MIN min + 0.5)"
for name in "${!RECIPE[@]}"; do
  # shellcheck disable=SC2086
  launch_training "$name" "$STEPS" $((${TRAIN_MIN%.*} * 60 + 120)) ${RECIPE[$name]} \
    --synthetic 300 --checkpoint-every 500 --max-minutes "$(awk "BEGIN{print $TRAIN_MIN + 0.5}")"
done
wait
stamp "training done"
for name in "${!RECIPE[@]}"; do tail -2 "runs/$name.out"; done
tar -cf "$OUT/runs_gpu.tar" runs/gpu_* runs/probe_*.out
stamp "packed $(du -h "$OUT/runs_gpu.tar" | cut -f1)"
