"""End to end on tiny sizes: train, run folder, exact resume, eval, non-finite loss, checkpoint size."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from auxrnn.cli import main
from auxrnn.models import AuxRNN
from auxrnn.train import checkpoint
from conftest import ckpt_of, tiny_args, write_mnist_idx

# A deterministic synthetic probe (copy-memory, 30 steps, 9 tokens) and a tiny r-LSTM.
TINY = tiny_args(32, 7)


def test_train_writes_the_run_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AUXRNN_PLOT", "1")  # curves.png too (conftest turns plotting off)
    run = tmp_path / "run"
    rc = main(["train", *TINY, "train.tensorboard=true", "train.pretrain_steps=2", "train.steps=3",
               "train.eval_every=2", f"train.out={run}"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "model.n_classes: 8" in out and "test accuracy" in out  # what the data filled in is printed
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "curves.png", "checkpoints/last.pt"):
        assert (run / name).is_file(), name
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["steps"] == 5 and summary["test_count"] == 32
    for key in ("test_accuracy", "steps", "epochs", "wall_seconds", "device"):
        assert key in summary
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    assert [r["phase"] for r in train] == ["pretrain", "pretrain", "train", "train", "train"]
    assert "sup_loss" not in train[0] and "aux_loss" in train[0]  # pretraining: auxiliary loss only
    assert {"loss", "sup_loss", "aux_loss", "train_acc", "lr", "examples_per_s", "peak_mem_mib"} <= set(train[-1])
    assert [r["step"] for r in records if r["kind"] == "eval"] == [2, 4, 5]
    assert ckpt_of(run)["config"]["model"]["n_classes"] == 8


@pytest.mark.determinism
def test_resume_continues_bit_for_bit(tmp_path):
    """4+2 steps straight == 3 steps, stop, resume, 3 more: across the phase and epoch boundaries, with dropout."""
    args = [*TINY, "model.dropout=0.2", "optim.schedule=cosine", "train.pretrain_steps=2", "train.steps=4",
            "train.checkpoint_every=2"]
    straight, sliced = tmp_path / "straight", tmp_path / "sliced"
    assert main(["train", *args, f"train.out={straight}"]) == 0
    assert main(["train", *args, f"train.out={sliced}", "--until-step", "3"]) == 0
    assert ckpt_of(sliced)["step"] == 3
    assert json.loads((sliced / "summary.json").read_text())["status"] == "until_step"
    assert main(["train", "--resume", str(sliced)]) == 0
    a, b = ckpt_of(straight), ckpt_of(sliced)
    assert a["step"] == b["step"] == 6
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert torch.equal(a["rng"][0]["anchor"], b["rng"][0]["anchor"])
    sa, sb = (json.loads((r / "summary.json").read_text()) for r in (straight, sliced))
    assert sa["test_accuracy"] == sb["test_accuracy"] and sa["param_sha256"] == sb["param_sha256"]


def test_a_finished_run_folder_is_not_overwritten(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *TINY, "train.steps=1", f"train.out={run}"]) == 0
    assert main(["train", *TINY, "train.steps=1", f"train.out={run}"]) == 2
    assert "already holds a checkpoint" in capsys.readouterr().err


def test_resume_refuses_to_change_the_model(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *TINY, "train.steps=1", f"train.out={run}"]) == 0
    assert main(["train", "--resume", str(run), "model.hidden=32"]) == 2
    assert "model.hidden cannot change when resuming" in capsys.readouterr().err


def test_a_checkpoint_written_before_a_model_key_existed_resumes(tmp_path):
    """A key added to ModelConfig later (here model.aux_start) takes its default, the behaviour the run had."""
    run = tmp_path / "run"
    assert main(["train", *TINY, "train.steps=3", "train.checkpoint_every=1", f"train.out={run}",
                 "--until-step", "2"]) == 0
    path = run / checkpoint.FOLDER / checkpoint.LAST
    ckpt = checkpoint.load(path)
    del ckpt["config"]["model"]["aux_start"]
    checkpoint.save(path, ckpt, keep_previous=False)
    assert main(["train", "--resume", str(run)]) == 0
    assert ckpt_of(run)["step"] == 3


def test_eval_scores_every_test_example(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *TINY, "data.options.size=30", "train.steps=2", f"train.out={run}"]) == 0
    capsys.readouterr()
    assert main(["eval", str(run)]) == 0
    assert "(" in capsys.readouterr().out
    result = json.loads((run / "eval.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    assert result["count"] == 30  # 30 examples in batches of 7: no partial batch dropped
    assert result["accuracy"] == summary["test_accuracy"]
    assert main(["eval", str(run / "checkpoints" / "last.pt"), "--out", str(tmp_path / "e.json")]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["correct"] == result["correct"]


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    real_forward = AuxRNN.forward
    calls = {"n": 0}

    def forward(self, *args, **kwargs):
        out = real_forward(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] > 3:  # steps 0, 1, 2 are fine; step 3 blows up
            out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(AuxRNN, "forward", forward)
    run = tmp_path / "run"
    rc = main(["train", *TINY, "train.steps=10", "train.checkpoint_every=2", f"train.out={run}"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "non-finite loss (nan) at step 3" in err and "last good one is" in err
    assert ckpt_of(run)["step"] == 2  # not overwritten with the diverged state
    assert json.loads((run / "summary.json").read_text())["status"] == "non_finite"


def test_paper_preset_trains_end_to_end_and_its_checkpoint_holds_no_data(tmp_path):
    """The Table 2 r-LSTM (1.55M parameters) on an IDX folder: one step, and a checkpoint no bigger than the
    parameters with two optimizer moments (no dataset, no activations inside)."""
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        write_mnist_idx(tmp_path, prefix, rng.integers(0, 256, (8, 28, 28), dtype=np.uint8), np.arange(8, dtype=np.uint8) + 2)
    run = tmp_path / "run"
    assert main(["train", "--preset", "mnist_rlstm_t300", "data.name=idx", f"data.options.folder={tmp_path}",
                 "data.batch_size=4", "train.pretrain_epochs=0", "train.epochs=0", "train.steps=1",
                 "train.tensorboard=false", f"train.out={run}"]) == 0
    n = sum(t.numel() for t in ckpt_of(run)["model"].values())
    assert n > 1_500_000
    assert (run / "checkpoints" / "last.pt").stat().st_size < 3 * 4 * n + 2**20


def test_checkpoint_holds_only_plain_containers(tmp_path):
    run = tmp_path / "run"
    assert main(["train", *TINY, "train.steps=1", f"train.out={run}"]) == 0
    ck = checkpoint.load(run / "checkpoints" / "last.pt")  # weights_only=True inside
    assert {"config", "model", "optimizer", "step", "rng", "wall_seconds"} <= set(ck)
    assert {"torch", "numpy", "python", "anchor"} <= set(ck["rng"][0])


def test_validation_split_is_carved_from_train_and_reported(tmp_path):
    run = tmp_path / "run"
    assert main(["train", *TINY, "data.val_size=8", "train.steps=1", f"train.out={run}"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["val_count"] == 8 and summary["test_count"] == 32
    assert summary["steps_per_epoch"] == 3  # (32 - 8) // 8


def test_time_budget_stops_with_a_checkpoint(tmp_path):
    run = tmp_path / "run"
    assert main(["train", *TINY, "train.steps=50", "train.max_minutes=1e-9", f"train.out={run}"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "time_budget" and summary["test_accuracy"] is None
    assert ckpt_of(run)["step"] == summary["steps"] == 1


def test_eval_on_another_dataset_with_the_same_shapes(tmp_path, capsys):
    rng = np.random.default_rng(1)
    for prefix in ("train", "t10k"):
        write_mnist_idx(tmp_path, prefix, rng.integers(0, 256, (9, 28, 28), dtype=np.uint8), np.arange(9, dtype=np.uint8))
    run = tmp_path / "run"
    assert main(["train", "--preset", "none", "data.name=idx", f"data.options.folder={tmp_path}", "data.batch_size=3",
                 "model.subseq_len=20", "model.hidden=8", "model.embed_dim=8", "model.aux_hidden=8",
                 "model.ffn_hidden=8", "model.truncate=20", "train.steps=1", "train.tensorboard=false",
                 f"train.out={run}"]) == 0
    capsys.readouterr()
    assert main(["eval", str(run), f"data.options.folder={tmp_path}", "--data", "idx", "--split", "train"]) == 0
    assert json.loads((run / "eval.json").read_text())["count"] == 9
    assert main(["eval", str(run), "data.options.length=30", "data.options.size=4", "--data", "copy"]) == 2
    err = capsys.readouterr().err  # another kind of input preparation: refused before any shape is compared
    assert "trained on 'idx' inputs with kind 'images'" in err and "refusing to evaluate" in err


def test_non_interactive_runs_log_a_line_per_interval(tmp_path, caplog):
    caplog.set_level("INFO", logger="auxrnn")
    assert main(["train", *TINY, "--no-progress", "train.pretrain_steps=1", "train.steps=2",
                 f"train.out={tmp_path / 'run'}"]) == 0
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("step ") and " loss " in r.getMessage()]
    assert [ln.split()[1] for ln in lines] == ["1/3", "2/3", "3/3"]
    assert "pretrain loss" in lines[0] and " acc " in lines[-1]


def test_optimizer_state_carries_over_the_pretraining_boundary(tmp_path):
    """Decision T23: the moments of the shared parameters continue into phase 2; the classifier, which got no
    gradient while pretraining, starts its state there."""
    run = tmp_path / "run"
    assert main(["train", *TINY, "train.pretrain_steps=3", "train.steps=2", f"train.out={run}"]) == 0
    ck = ckpt_of(run)
    names = list(ck["model"])  # state_dict order is the parameters' order (no buffers in this model)
    steps = {names[i]: int(s["step"]) for i, s in ck["optimizer"]["state"].items()}
    assert steps["core.rnn.weight_hh_l0"] == 5 and steps["encoder.table.weight"] == 5
    assert steps["classifier.0.weight"] == 2
