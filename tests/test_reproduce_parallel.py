"""`auxrnn reproduce --parallel N` (cells as subprocesses) and out-of-memory recorded as a cell's result."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from auxrnn import reproduce
from auxrnn.cli import main
from auxrnn.reproduce import runner

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


@pytest.mark.slow
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



def _spread(tmp_path, monkeypatch, n_gpus: int, *extra: str) -> dict[str, str | None]:
    """Run a 4-cell table with --parallel 2 on a machine simulated to have `n_gpus` GPUs, each child a stand-in
    that records the CUDA_VISIBLE_DEVICES it was given and finishes at once; {cell: its GPU or None}."""
    preset = tmp_path / "tiny.yaml"
    preset.write_text("\n".join(TINY_PRESET) + "\n")
    cpu_cell = {"train.device": "cpu"}
    exp = reproduce.Experiment("four", "Four cells", "For the test.", [
        reproduce.Cell("a", "r-LSTM", str(preset), "1"), reproduce.Cell("b", "r-LSTM", str(preset), "2"),
        reproduce.Cell("c", "r-LSTM", str(preset), "3", cpu_cell), reproduce.Cell("d", "r-LSTM", str(preset), "4")])
    monkeypatch.setitem(reproduce.EXPERIMENTS, "four", exp)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: n_gpus)
    got: dict[str, str | None] = {}

    class Child:
        def __init__(self, argv, env=None, **kwargs):
            out = Path(next(a.split("=", 1)[1] for a in argv if a.startswith("train.out=")))
            got[out.name] = (env or os.environ).get("CUDA_VISIBLE_DEVICES")
            (out / "summary.json").write_text(json.dumps({"status": "finished", "test_accuracy": 50.0}))

        def poll(self):
            return 0

    monkeypatch.setattr(runner.subprocess, "Popen", Child)
    root = tmp_path / "runs"
    assert main(["reproduce", "four", "--parallel", "2", "--out", str(root), "--results", str(tmp_path / "r.md"),
                 *extra]) == 0
    return got


def test_parallel_cells_are_spread_round_robin_over_the_visible_gpus(tmp_path, monkeypatch):
    # Cells a, b, d use the preset's train.device=auto: GPUs 0, 1, 0 in start order; c is a CPU cell.
    assert _spread(tmp_path, monkeypatch, 2) == {"a": "0", "b": "1", "c": None, "d": "0"}


def test_gpus_chooses_the_gpus_the_cells_are_spread_over(tmp_path, monkeypatch):
    assert _spread(tmp_path, monkeypatch, 4, "--gpus", "3,1") == {"a": "3", "b": "1", "c": None, "d": "3"}


def test_cpu_only_cells_and_machines_get_no_gpu(tmp_path, monkeypatch):
    assert _spread(tmp_path, monkeypatch, 0) == {"a": None, "b": None, "c": None, "d": None}
    (tmp_path / "x").mkdir()
    assert set(_spread(tmp_path / "x", monkeypatch, 2, "--device", "cpu").values()) == {None}


def test_a_childs_gpu_is_named_as_the_parents_cuda_visible_devices_names_it(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    assert runner.visible_gpus() == ["2", "5"]
    assert [runner.gpu_for("auto", i, ["2", "5"]) for i in range(3)] == ["2", "5", "2"]
    assert runner.gpu_for("cuda:1", 0, ["2", "5"]) is None  # pinned by the user: left alone


def test_gpus_is_refused_without_parallel_cells_or_with_an_empty_id(capsys):
    assert main(["reproduce", "table2-mnist", "--gpus", "0,1"]) == 2
    assert "--gpus spreads the cells of --parallel N" in capsys.readouterr().err
    assert main(["reproduce", "table2-mnist", "--parallel", "2", "--gpus", "0,,1"]) == 2
    assert "comma-separated GPU ids" in capsys.readouterr().err
