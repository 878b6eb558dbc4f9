#!/usr/bin/env bash
# A time-boxed, resumable GPU run of paper cells on any machine: the CUDA tests, the GPU benchmark grid, the
# concurrency measurement, then MINUTES of training of the chosen cells, in parallel, in float32 (decision T24).
#
#   bash scripts/gpu_slice.sh MINUTES "table2-mnist" "rlstm_t300,plstm_t300,lstm_t300"
#
# MINUTES=0 runs the checks alone (tests and benchmarks), no training.
# Run from the repository root (or with auxrnn installed). The run folders, the benchmark files, results.md
# and log.txt go under RUNS (default runs/gpu). Each cell stops with a checkpoint after MINUTES
# (train.max_minutes) and the next call resumes every unfinished cell: repeat the same command until they finish.
# Data as for `auxrnn train` (AUXRNN_DATA, AUXRNN_MNIST_DIR; docs/data.md).
# Optional: PACK=FILE.tgz also packs RUNS (without TensorBoard events) into one gzipped tar, to carry the runs
# to another machine; unpack it there with `tar xzf FILE.tgz -C RUNS` and the same command resumes them.
# DEVICE=cpu BENCH="--lengths 64 --batch 2 --steps 1" runs the same flow on a CPU, for checking the script.
set -uo pipefail
MINUTES=${1:?minutes of training of this run}
EXPERIMENTS=${2:-table2-mnist}
CELLS=${3:-rlstm_t300,plstm_t300,lstm_t300}
DEVICE=${DEVICE:-cuda}
BENCH=${BENCH:-}
RUNS=${RUNS:-runs/gpu}
PACK=${PACK:-}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
mkdir -p "$RUNS"
LOG="$RUNS/log.txt"

{
  date -u; command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  echo "== CUDA tests"
  $PY -m pytest -q -p no:cacheprovider -m cuda tests/test_cuda.py tests/test_baselines_cuda.py
  echo "== bench"
  $PY -m auxrnn bench --device "$DEVICE" $BENCH --json "$RUNS/bench-gpu.json"
  echo "== concurrency: r-LSTM 1x600 cells sharing the device"
  $PY -m auxrnn bench --device "$DEVICE" --models rlstm-1x600 --lengths 784 $BENCH --concurrent 1,2,4,8 \
      --json "$RUNS/concurrency.json"
  if [ "$MINUTES" != 0 ]; then
    echo "== $EXPERIMENTS [$CELLS] for $MINUTES min"
    $PY -m auxrnn reproduce "$EXPERIMENTS" --cells "$CELLS" --parallel 8 --device "$DEVICE" --out "$RUNS" \
        "train.max_minutes=$MINUTES" train.precision=fp32
    cat "$RUNS/results.md"
  fi
} >>"$LOG" 2>&1

if [ -n "$PACK" ]; then
  tar czf "$PACK" -C "$RUNS" --exclude tensorboard . && echo "packed $RUNS into $PACK" >>"$LOG"
fi
