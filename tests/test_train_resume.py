"""Runs that survive a crash: kill -9 and resume gives the straight run's files; damaged checkpoints fall back."""
from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time

import pytest
import torch

from auxrnn.cli import main
from conftest import SAME_THREADS, same_threads_env, tiny_args

TINY = tiny_args(64, 16, "train.pretrain_steps=3", "train.eval_every=40", log_every=10, tensorboard=True)
TIMING = {"examples_per_s", "eval_seconds", "peak_mem_mib"}


def _records(run):
    """metrics.jsonl without timing fields and without start/resume events (what may differ after a crash)."""
    out = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r.get("kind") == "event" and r.get("event") in ("start", "resume"):
            continue
        out.append({k: v for k, v in r.items() if k not in TIMING})
    return out


def _tb_steps(run, tag="train/loss"):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    return [e.step for e in acc.Scalars(tag)]


@pytest.mark.slow
@pytest.mark.determinism
def test_killed_and_resumed_run_writes_the_same_metrics_as_a_straight_run(tmp_path):
    """Straight in this process, killed in a subprocess, resumed here: all three with one thread count."""
    args = [*TINY, "train.steps=400", "train.checkpoint_every=50", SAME_THREADS]
    straight, crashed = tmp_path / "straight", tmp_path / "crashed"
    assert main(["train", *args, f"train.out={straight}", "--no-progress"]) == 0
    proc = subprocess.Popen([sys.executable, "-m", "auxrnn", "train", *args, f"train.out={crashed}", "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=same_threads_env())
    try:  # kill -9 once a line after the first checkpoint is logged, long before the second one
        deadline = time.monotonic() + 600  # generous for a loaded machine: it ends once logged
        while time.monotonic() < deadline and proc.poll() is None:
            path = crashed / "metrics.jsonl"
            steps = [json.loads(x)["step"] for x in path.read_text().splitlines() if x] if path.exists() else []
            if steps and max(steps) >= 70:
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    logged = [r["step"] for r in _records(crashed) if r["kind"] == "train"]
    ckpt = torch.load(crashed / "checkpoints" / "last.pt", weights_only=True)["step"]
    assert max(logged) > ckpt and ckpt < 400, "the kill must land between a checkpoint and the next log lines"
    assert main(["train", "--resume", str(crashed), "--no-progress"]) == 0
    assert _records(crashed) == _records(straight)
    steps = _tb_steps(crashed)
    assert steps == sorted(set(steps)) == _tb_steps(straight)  # TensorBoard purged the lines after the checkpoint


def _tiny_run(tmp_path, *extra):
    run = tmp_path / "run"
    assert main(["train", *TINY, "train.steps=20", "train.checkpoint_every=5", "train.tensorboard=false",
                 f"train.out={run}", "--until-step", "12", *extra]) == 0
    return run


def test_a_torn_last_checkpoint_resumes_from_the_previous_one(tmp_path, caplog):
    run = _tiny_run(tmp_path)
    last = run / "checkpoints" / "last.pt"
    assert torch.load(last, weights_only=True)["step"] == 12
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    with caplog.at_level(logging.WARNING, logger="auxrnn.train"):
        assert main(["train", "--resume", str(run), "--until-step", "15", "--no-progress"]) == 0
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1 and "last.pt has no checksum" in warning[0] and "prev.pt (step 10)" in warning[0]
    assert torch.load(last, weights_only=True)["step"] == 15


def test_no_loadable_checkpoint_is_a_clear_error_and_never_a_fresh_start(tmp_path, capsys):
    run = _tiny_run(tmp_path)
    for name in ("last.pt", "prev.pt"):
        (run / "checkpoints" / name).write_bytes(b"not a checkpoint")
    before = (run / "metrics.jsonl").read_text()
    assert main(["train", "--resume", str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "last.pt" in err and "prev.pt" in err and "delete" in err and "Traceback" not in err
    assert (run / "metrics.jsonl").read_text() == before  # nothing was overwritten
    for name in ("last.pt", "prev.pt"):
        (run / "checkpoints" / name).unlink()
    assert main(["train", "--resume", str(run), "--no-progress"]) == 2
    assert "cannot resume" in capsys.readouterr().err


def test_a_changed_length_is_refused_when_it_would_move_the_learning_rate(tmp_path, capsys):
    run = _tiny_run(tmp_path, "optim.schedule=cosine")
    assert main(["train", "--resume", str(run), "train.steps=100", "--no-progress"]) == 2
    assert "would move the learning rate at step 12" in capsys.readouterr().err
    const = tmp_path / "const"
    const.mkdir()
    run = _tiny_run(const, "optim.schedule=constant")
    assert main(["train", "--resume", str(run), "train.steps=30", "--no-progress"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["steps"] == 33  # 3 pretraining + 30


def test_threads_are_chosen_reported_and_saved(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    threads = torch.get_num_threads()
    try:
        run = _tiny_run(tmp_path, "train.threads=1")
    finally:
        torch.set_num_threads(threads)
    summary_or_event = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()][0]
    assert summary_or_event["event"] == "start" and summary_or_event["threads"] == 1
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["threads"] == 1 and summary["threads_from"] == "set"


def test_check_validates_dataset_options_and_names_the_key(capsys):
    assert main(["train", "--check", "data.options.nosuch=1"]) == 2
    assert "does not take option(s) nosuch" in capsys.readouterr().err
    assert main(["train", "--check", "data.options.perm_seed=x"]) == 2
    assert "data.options.perm_seed='x' has the wrong type: expected int (dataset 'pmnist')" in capsys.readouterr().err
    assert main(["train", "--check", "data.options.perm_seed=3"]) == 0
    assert "perm_seed: 3" in capsys.readouterr().out


def test_overrides_apply_the_dataset_first_whatever_their_order(tmp_path):
    from auxrnn.train.config import build_config

    a = build_config("default", {"data.options.folder": str(tmp_path), "data.name": "idx"})
    b = build_config("default", {"data.name": "idx", "data.options.folder": str(tmp_path)})
    assert a.data.options == b.data.options == {"folder": str(tmp_path)}


def test_unknown_key_message_is_two_sentences():
    from auxrnn.train.config import build_config

    with pytest.raises(ValueError, match=r"^unknown config key 'zzz\.qqq'\. Valid keys: data, model"):
        build_config("default", {"zzz.qqq": 1})


def test_resume_and_eval_refuse_data_built_differently_from_the_checkpoints(tmp_path, capsys):
    """The permutation of a permuted image source is saved with the run: changing it is refused, by name."""
    import numpy as np

    from conftest import write_mnist_idx

    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        write_mnist_idx(tmp_path, prefix, rng.integers(0, 256, (8, 6, 6), dtype=np.uint8), np.arange(8, dtype=np.uint8) % 3)
    run = tmp_path / "run"
    assert main(["train", "--preset", "none", "data.name=idx", f"data.options.folder={tmp_path}", "data.options.perm_seed=0",
                 "data.batch_size=4", *tiny_args()[6:], "train.steps=2", f"train.out={run}"]) == 0
    assert main(["eval", str(run), "data.options.perm_seed=1"]) == 2
    assert "the data permutation of 'idx'" in capsys.readouterr().err
    assert main(["eval", str(run)]) == 0
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("perm_seed: 0", "perm_seed: 5"))
    assert main(["train", "--resume", str(run), "train.steps=4", "--no-progress"]) == 2
    assert "the data permutation saved in" in capsys.readouterr().err
