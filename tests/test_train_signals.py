"""SIGTERM mid-run: the process writes a checkpoint, exits cleanly, and the run resumes from it."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import tiny_args

TINY = tiny_args(32, None)


def _wait_for(predicate, seconds: float, proc) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        if proc.poll() is not None:
            return predicate()
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_sigterm_writes_a_loadable_checkpoint_and_exits_cleanly(tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "auxrnn", "train", *TINY, "train.steps=100000", "train.checkpoint_every=3",
           f"train.out={run}", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        assert _wait_for(lambda: (run / "checkpoints" / "last.pt").exists(), 120, proc), "no checkpoint appeared"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    assert "received SIGTERM" in err and "auxrnn train --resume" in err
    ck = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "signal" and summary["signal"] == "SIGTERM"
    assert summary["steps"] == ck["step"] >= 3
    # ... and the run carries on from there.
    res = subprocess.run([sys.executable, "-m", "auxrnn", "train", "--resume", str(run), "--until-step",
                          str(ck["step"] + 2)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["step"] == ck["step"] + 2
