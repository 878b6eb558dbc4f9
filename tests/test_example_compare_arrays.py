"""examples/arrays/compare_acsf1.py at a tiny size: settings chosen on validation only, then one run per seed."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "arrays" / "compare_acsf1.py"


def _load():
    spec = importlib.util.spec_from_file_location("compare_acsf1", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_signals(folder: Path, n_train=24, n_test=9, T=40, seed=0):
    """Three classes of noisy sine waves, the npy layout of the arrays source (x float32 (N, T), y int64)."""
    rng = np.random.default_rng(seed)
    folder.mkdir()
    for split, n in (("train", n_train), ("test", n_test)):
        y = np.arange(n) % 3
        t = np.arange(T)
        x = np.sin(t[None, :] * (0.2 + 0.3 * y[:, None])) + 0.3 * rng.standard_normal((n, T))
        np.save(folder / f"x_{split}.npy", x.astype(np.float32))
        np.save(folder / f"y_{split}.npy", y.astype(np.int64))
    return folder


def test_each_method_has_its_grid_and_the_same_budget():
    grid = _load().methods(updates=1100, pretrain=100)
    assert set(grid) == {"lstm", "rlstm_tokens", "rlstm_values"}
    for points in grid.values():
        assert len(points) == 4
        for p in points:  # every run: 1100 optimizer updates in all
            assert p["train.steps"] + p.get("train.pretrain_steps", 0) == 1100
    assert {p["model.aux"] for p in grid["rlstm_values"]} == {"reconstruct_values"}
    assert all(p["data.options.quantiser"] == "none" for p in grid["rlstm_values"])
    assert all("data.options.quantiser" not in p for p in grid["rlstm_tokens"])


@pytest.mark.slow
def test_tiny_comparison_selects_on_validation_and_reports_every_seed(tmp_path):
    data = _write_signals(tmp_path / "data")
    runs, report = tmp_path / "runs", tmp_path / "report.json"
    small = ["model.hidden=8", "model.embed_dim=4", "model.aux_hidden=8", "model.truncate=10",
             "model.subseq_len=8", "model.aux_truncate=8", "data.batch_size=6", "data.eval_batch_size=50"]
    cmd = [sys.executable, str(SCRIPT), str(data), str(runs), "--report", str(report), "--seeds", "0", "1",
           "--val-size", "6", "--updates", "3", "--pretrain", "1", "--jobs", "2", "--set", *small]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(report.read_text())
    assert out["budget"] == {"updates": 3, "pretrain_rlstm": 1, "batch": 6} and out["seeds"] == [0, 1]
    for name, entry in out["methods"].items():
        vals = [g["val_accuracy"] for g in entry["grid"]]
        best = entry["grid"][vals.index(max(vals))]["settings"]  # the first of the best, in grid order
        assert entry["chosen"] == best, name
        assert len(entry["test_accuracy"]) == 2
        assert abs(entry["mean"] - sum(entry["test_accuracy"]) / 2) < 1e-9
    for m in out["methods"]:  # selection runs hold out validation; test runs train on every training item
        sel = json.loads((runs / "select" / f"{m}_0" / "summary.json").read_text())
        fin = json.loads((runs / "test" / f"{m}_seed1" / "summary.json").read_text())
        assert sel["val_count"] == 6 and "val_accuracy" not in fin and fin["seed"] == 1
    assert done.stdout.strip().splitlines()[-1] == f"report: {report} and {report.with_suffix('.md')}"
    table = report.with_suffix(".md").read_text()
    assert table.count("\n| r-LSTM, real values | values, lr ") == 5  # its result row and its 4 grid points
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)  # finished runs are reused
    assert again.returncode == 0 and json.loads(report.read_text()) == out
