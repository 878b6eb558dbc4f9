"""scripts/window_probe.py: the check behind the LSTM Truncate300 investigation (docs/results.md)."""
from __future__ import annotations

import json
import re
import runpy
import shutil
import sys
from pathlib import Path

import pytest

from auxrnn.cli import main
from conftest import tiny_args

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "window_probe.py"


def test_window_probe_scores_the_run_as_trained_and_with_its_prefix_replaced(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    assert main(["train", *tiny_args(64, 16, "train.steps=6", "model.aux=none"), f"train.out={run}"]) == 0
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["window_probe.py", str(run), "--keep", "10", "--threads", "1"])
    runpy.run_path(str(SCRIPT), run_name="__main__")
    out = capsys.readouterr().out
    rows = dict(re.findall(r"^  (.+?)\s+(\d+\.\d\d)$", out, re.M))
    assert list(rows) == ["as trained", "steps [0, 20) from another example", "steps [0, 20) blanked",
                          "linear classifier on the last 10 steps", "MLP on the last 10 steps"]
    summary = json.loads((run / "summary.json").read_text())
    assert float(rows["as trained"]) == round(summary["test_accuracy"], 2)


def test_window_probe_refuses_a_window_as_long_as_the_sequence(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    assert main(["train", *tiny_args(16, 16, "train.steps=1", "model.aux=none"), f"train.out={run}"]) == 0
    monkeypatch.setattr(sys, "argv", ["window_probe.py", str(run), "--keep", "30"])
    with pytest.raises(SystemExit, match="--keep must be between 1 and 29"):
        runpy.run_path(str(SCRIPT), run_name="__main__")


def test_window_probe_fits_the_references_from_the_config_alone(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    assert main(["train", *tiny_args(16, 16, "train.steps=1", "model.aux=none"), f"train.out={run}"]) == 0
    shutil.rmtree(run / "checkpoints")  # a published folder: config.yaml and summaries, no checkpoint
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["window_probe.py", str(run), "--keep", "10", "--references-only"])
    runpy.run_path(str(SCRIPT), run_name="__main__")
    out = capsys.readouterr().out
    assert "references only" in out
    assert [label for label, _ in re.findall(r"^  (.+?)\s+(\d+\.\d\d)$", out, re.M)] == [
        "linear classifier on the last 10 steps", "MLP on the last 10 steps"]


def test_ink_in_window_counts_the_share_of_ink_in_the_last_steps():
    """scripts/ink_in_window.py, behind Fig. 3's "from T = 3136 on the label lies before the window"."""
    import numpy as np

    ink_shares = runpy.run_path(str(SCRIPT.with_name("ink_in_window.py")))["ink_shares"]
    images = np.zeros((2, 28, 28), dtype=np.uint8)
    images[:, -1, :] = 200  # ink in the bottom row only: all of it in the last 28 steps at side 28
    images[1, 0, :] = 200   # and the top row of the second image: half of that image's ink
    shares = ink_shares(images, [28, 56], keep=28)
    assert shares[28] == pytest.approx(100 * 2 / 3)
    assert 0 < shares[56] < shares[28]  # twice the side: the last 28 steps are half the bottom row
