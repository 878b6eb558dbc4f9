"""`auxrnn reproduce --parallel N` (cells as subprocesses) and out-of-memory recorded as a cell's result."""
from __future__ import annotations

import json
import os

import torch

from auxrnn import reproduce
from auxrnn.cli import main

TINY_PRESET = ["data.name: copy", "data.options.length: 30", "data.options.size: 16", "data.batch_size: 8",
               "model.subseq_len: 10", "model.truncate: 10", "model.aux_truncate: 10", "model.hidden: 16",
               "model.embed_dim: 8", "model.aux_hidden: 16", "model.ffn_hidden: 16", "train.steps: 2",
               "train.tensorboard: false"]


def _tiny(tmp_path, monkeypatch):
    preset = tmp_path / "tiny.yaml"
    preset.write_text("\n".join(TINY_PRESET) + "\n")
    exp = reproduce.Experiment("tiny", "A tiny table", "For the test.", [
        reproduce.Cell("a", "r-LSTM", str(preset), "96.4"),
        reproduce.Cell("b", "Transformer", str(preset), "98.9",
                       {"arch.name": "transformer", "arch.d_model": 16, "arch.n_layers": 1})])
    monkeypatch.setitem(reproduce.EXPERIMENTS, "tiny", exp)
    return exp


def test_parallel_cells_run_as_subprocesses_and_resume(tmp_path, monkeypatch):
    _tiny(tmp_path, monkeypatch)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    root, results = tmp_path / "runs", tmp_path / "results.md"
    args = ["reproduce", "tiny", "--parallel", "2", "--out", str(root), "--results", str(results), "--device", "cpu"]
    # A first slice that stops both cells after their first step (resumable keys only on resume).
    assert main([*args, "train.steps=3", "train.max_minutes=1e-9"]) == 1  # unfinished cells: exit 1
    share = max(1, len(os.sched_getaffinity(0)) // 2)  # two children: each takes half the cores
    for cell in ("a", "b"):
        summary = json.loads((root / "tiny" / cell / "summary.json").read_text())
        assert summary["status"] == "time_budget"
        assert (summary["threads"], summary["threads_from"]) == (share, "set")
        assert "$ " in (root / "tiny" / cell / "stdout.log").read_text()
    args.append("train.max_minutes=0")  # the budget is saved with the run: lift it on resume
    assert main(args) == 0  # the second slice resumes both from their checkpoints (train.steps=3 is saved)
    for cell in ("a", "b"):
        folder = root / "tiny" / cell
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["status"] == "finished" and summary["steps"] == 3
        log = (folder / "stdout.log").read_text()
        assert "--resume" in log and "test accuracy" in log
    assert json.loads((root / "tiny" / "b" / "summary.json").read_text())["arch"] == "transformer"
    text = results.read_text()
    assert text.count("| finished |") == 2
    mtime = (root / "tiny" / "a" / "summary.json").stat().st_mtime_ns
    assert main(args) == 0  # everything finished: nothing runs again
    assert (root / "tiny" / "a" / "summary.json").stat().st_mtime_ns == mtime


def test_out_of_memory_is_the_cells_result_and_the_sweep_goes_on(tmp_path, monkeypatch):
    _tiny(tmp_path, monkeypatch)
    from auxrnn.train import loop

    real_train = loop.train

    def train(cfg, run_dir, **kwargs):
        if run_dir.name == "a":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real_train(cfg, run_dir, **kwargs)

    monkeypatch.setattr(loop, "train", train)
    root, results = tmp_path / "runs", tmp_path / "results.md"
    args = ["reproduce", "tiny", "--out", str(root), "--results", str(results)]
    assert main(args) == 0  # oom is a result, not an unfinished cell
    a = json.loads((root / "tiny" / "a" / "summary.json").read_text())
    assert a["status"] == "oom" and "OutOfMemoryError" in a["message"]
    assert json.loads((root / "tiny" / "b" / "summary.json").read_text())["status"] == "finished"
    rows = [line for line in results.read_text().splitlines() if line.startswith("| a ")]
    assert "| 96.4 | oom |" in rows[0]
    assert main(args) == 0  # kept: not run again
    assert json.loads((root / "tiny" / "a" / "summary.json").read_text())["status"] == "oom"
    monkeypatch.setattr(loop, "train", real_train)
    assert main([*args, "--retry-oom"]) == 0
    assert json.loads((root / "tiny" / "a" / "summary.json").read_text())["status"] == "finished"


def test_dry_run_lists_the_baseline_cells(capsys):
    assert main(["reproduce", "table2-mnist,figure3,dbpedia", "--dry-run", "--cells", "transformer*,sa_lstm,lm_lstm"]) == 0
    out = capsys.readouterr().out
    assert "--preset mnist_transformer" in out and "--preset dogs_transformer" in out
    assert out.count("--preset dogs_transformer") == 8
    assert "--preset dbpedia_sa_lstm" in out and "--preset dbpedia_lm_lstm" in out
