#!/usr/bin/env bash
# One device call that makes a GPU slice count: CUDA tests, the GPU benchmark grid, the concurrency
# measurement, then a timed slice of Table 2 cells trained in parallel, each returned as one tar.
#
#   bash scripts/gpu_slice.sh MINUTES "table2-mnist" "rlstm_t300,plstm_t300,lstm_t300"
#
# Run from the repository root on the GPU machine, with MNIST copied into the git-ignored gpu/mnist/ and
# the previous slice's parts (if any) in gpu/runs/ (both carried). Everything comes back under $OUT as
# log.txt plus one gzipped tar of the run folders and benchmark files, cut into parts of at most 15 MiB
# (slice.tgz.part-aa, -ab, ...): a transfer limit on file size is met by splitting files, never by
# changing what is trained. Put the parts back in gpu/runs/ for the next slice; they are reassembled here.
# Cells train in float32 (decision T24).
# DEVICE=cpu BENCH="--lengths 64 --batch 2 --steps 1" runs the same flow on a CPU, for checking the script.
set -uo pipefail
MINUTES=${1:?minutes of training for the slice}
EXPERIMENTS=${2:-table2-mnist}
CELLS=${3:-rlstm_t300,plstm_t300,lstm_t300}
DEVICE=${DEVICE:-cuda}
BENCH=${BENCH:-}
OUT=${OUT:?set OUT to the folder that comes back}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export AUXRNN_DATA="$PWD/gpu/data" AUXRNN_MNIST_DIR="$PWD/gpu/mnist"
PY=${PYTHON:-python3}
LOG="$OUT/log.txt"
mkdir -p gpu/runs "$OUT"

if ls gpu/runs/slice.tgz.part-* >/dev/null 2>&1; then
  cat gpu/runs/slice.tgz.part-* | tar xzf - -C gpu/runs && rm -f gpu/runs/slice.tgz.part-*
fi
{
  date -u; command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  echo "== CUDA tests"
  $PY -m pytest -q -p no:cacheprovider -m cuda tests/test_cuda.py tests/test_baselines_cuda.py
  echo "== bench"
  $PY -m auxrnn bench --device "$DEVICE" $BENCH --json gpu/runs/bench-gpu.json
  echo "== concurrency: r-LSTM 1x600 cells sharing the device"
  $PY -m auxrnn bench --device "$DEVICE" --models rlstm-1x600 --lengths 784 $BENCH --concurrent 1,2,4,8 \
      --json gpu/runs/concurrency.json
  echo "== slice: $EXPERIMENTS [$CELLS] for $MINUTES min"
  $PY -m auxrnn reproduce "$EXPERIMENTS" --cells "$CELLS" --parallel 8 --device "$DEVICE" --out gpu/runs \
      --results gpu/runs/results.md "train.max_minutes=$MINUTES" train.precision=fp32
  cat gpu/runs/results.md
} >"$LOG" 2>&1

tar czf - -C gpu/runs --exclude tensorboard . | split -b 15m - "$OUT/slice.tgz.part-"
ls -la "$OUT" >>"$LOG"
