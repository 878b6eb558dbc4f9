"""Two CPU processes with gloo (torchrun): both ranks end with identical parameters."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

TINY = ["--preset", "none", "data.name=copy", "data.options.length=30", "data.options.size=35", "data.batch_size=8",
        "data.eval_batch_size=4", "model.subseq_len=10", "model.truncate=10", "model.aux_truncate=10",
        "model.hidden=16", "model.embed_dim=8", "model.aux_hidden=16", "model.ffn_hidden=16",
        "train.tensorboard=false", "train.log_every=1"]


@pytest.mark.slow
def test_two_gloo_ranks_train_to_identical_parameters(tmp_path):
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "auxrnn", "train", *TINY, "train.pretrain_steps=2", "train.steps=3", "train.checkpoint_every=2",
           "train.device=cpu", f"train.out={run}", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["world_size"] == 2
    hashes = summary["param_sha256"]
    assert len(hashes) == 2 and hashes[0] == hashes[1]
    assert summary["test_count"] == 35  # gathered across ranks: every example once, none dropped
    ck = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert ck["step"] == 5 and len(ck["rng"]) == 2  # one RNG record per rank
    assert not torch.equal(ck["rng"][0]["anchor"], ck["rng"][1]["anchor"])  # anchors seeded with seed + rank
