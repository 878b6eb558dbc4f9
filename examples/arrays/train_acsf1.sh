#!/usr/bin/env bash
# The arrays example of docs/arrays.md: ACSF1 (appliance power, 1460 steps, 10 classes) from the aeon 1.6.0
# wheel, an r-LSTM and the same LSTM without the auxiliary loss, a few CPU minutes each.
#   bash examples/arrays/train_acsf1.sh [DATA_DIR] [RUNS_DIR]
set -euo pipefail
DATA=${1:-data/acsf1}
RUNS=${2:-runs}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

[ -f "$DATA/y_test.npy" ] || python examples/arrays/prepare_acsf1.py "$DATA"
auxrnn data verify arrays --path "$DATA"
auxrnn data info arrays --path "$DATA"

COMMON=(--preset none --no-progress data.name=arrays "data.options.path=$DATA" data.batch_size=20
        data.eval_batch_size=100 model.hidden=128 model.embed_dim=64 model.aux_hidden=128 model.aux_layers=1
        model.subseq_len=200 model.aux_truncate=200 model.truncate=300 optim.lr=3e-3 optim.schedule=cosine
        optim.min_lr=0.05 train.steps=1000 train.log_every=100 train.eval_every=250)
auxrnn train "${COMMON[@]}" model.aux=reconstruct train.pretrain_steps=100 "train.out=$RUNS/acsf1_rlstm"
auxrnn train "${COMMON[@]}" model.aux=none "train.out=$RUNS/acsf1_lstm"
