"""Resume across ranks: kill -9 one rank of a 2-rank gloo run after a checkpoint, then resume it with
torchrun (by hand, or by torchrun itself with --max-restarts); the result equals an uninterrupted run's."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ckpt_of, tiny_args

ARGS = [*tiny_args(32, 8, "train.pretrain_steps=2", "train.steps=38", "train.checkpoint_every=4"),
        "train.device=cpu", "--no-progress"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread count for every run compared here


def _ranks_of(agent: int) -> dict[int, int]:
    """{RANK: pid} of the worker processes whose parent is `agent` (from /proc)."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) != agent:
                continue
            env = dict(x.split("=", 1) for x in (d / "environ").read_text().split("\0") if "=" in x)
        except (OSError, IndexError, ValueError):
            continue
        if "RANK" in env:
            out[int(env["RANK"])] = int(d.name)
    return out


def _kill_rank_after_a_checkpoint(agent: subprocess.Popen, run: Path, rank: int = 1) -> int:
    """SIGKILL rank `rank` of `agent` once the run has a checkpoint past step 0; the step it had then."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and agent.poll() is None:
        last = run / "checkpoints" / "last.pt"
        if last.exists():
            try:
                step = torch.load(last, weights_only=True)["step"]
            except Exception:  # noqa: BLE001 - being replaced right now: read it again
                step = 0
            pids = _ranks_of(agent.pid)
            if step > 0 and rank in pids:
                os.kill(pids[rank], signal.SIGKILL)
                return step
        time.sleep(0.02)
    raise AssertionError("the run finished or stalled before a rank could be killed")


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> dict:
    """The uninterrupted 2-rank run both tests compare with: trained once per module."""
    run = tmp_path_factory.mktemp("elastic") / "straight"
    res = subprocess.run([*TORCHRUN, "-m", "auxrnn", "train", *ARGS, f"train.out={run}"], capture_output=True,
                         text=True, timeout=300, env=ENV)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return ckpt_of(run)


def _assert_same_parameters(a: dict, b: dict) -> None:
    assert a["step"] == b["step"] == 40
    for name, p in a["model"].items():
        assert torch.equal(b["model"][name], p), name


@pytest.mark.slow
@pytest.mark.determinism
def test_a_rank_killed_after_a_checkpoint_resumes_with_torchrun_like_an_uninterrupted_run(tmp_path, straight):
    run = tmp_path / "killed"
    agent = subprocess.Popen([*TORCHRUN, "-m", "auxrnn", "train", *ARGS, f"train.out={run}"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        killed_after = _kill_rank_after_a_checkpoint(agent, run)
        _, err = agent.communicate(timeout=120)
    finally:
        if agent.poll() is None:
            agent.kill()
    assert agent.returncode != 0, "torchrun must report the killed rank"
    assert 0 < killed_after < 40 and ckpt_of(run)["step"] < 40 and not (run / "summary.json").exists()
    res = subprocess.run([*TORCHRUN, "-m", "auxrnn", "train", "--resume", str(run), "--no-progress"],
                         capture_output=True, text=True, timeout=300, env=ENV)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "resuming at step" in res.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["world_size"] == 2
    _assert_same_parameters(straight, ckpt_of(run))


@pytest.mark.slow
@pytest.mark.determinism
def test_torchrun_max_restarts_resumes_the_job_from_its_run_folder_by_itself(tmp_path, straight):
    run = tmp_path / "elastic"
    # The ranks of a restarted round must not share torchrun's rendezvous store with the dead round: its
    # stale gloo addresses make the new round's connect fail now and then (docs/distributed.md).
    env = {**ENV, "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
    agent = subprocess.Popen([*TORCHRUN, "--max-restarts", "1", "-m", "auxrnn", "train", *ARGS, f"train.out={run}"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        killed_after = _kill_rank_after_a_checkpoint(agent, run)
        out, err = agent.communicate(timeout=300)
    finally:
        if agent.poll() is None:
            agent.kill()
    assert agent.returncode == 0, out[-3000:] + err[-3000:]
    assert "torchrun restart 1: continuing" in err and "resuming at step" in err
    events = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    resumed = [e["step"] for e in events if e.get("event") == "resume"]
    assert len(resumed) == 1 and 0 < resumed[0] <= killed_after + 4
    assert json.loads((run / "summary.json").read_text())["status"] == "finished"
    _assert_same_parameters(straight, ckpt_of(run))


def test_a_restarted_job_resumes_its_own_checkpoint_and_no_other(tmp_path, monkeypatch, capsys):
    """In process, with torchrun's variables set by hand: the restart count alone never adopts a folder."""
    from auxrnn.cli import main

    run = tmp_path / "run"
    cmd = ["train", *tiny_args(32, 8, "train.steps=6", "train.checkpoint_every=2"), f"train.out={run}", "--no-progress"]
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-a")
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "0")
    assert main([*cmd, "--until-step", "2"]) == 0
    assert ckpt_of(run)["elastic_run_id"] == "job-a"
    assert main([*cmd, "--until-step", "4"]) == 2  # no restart: a fresh run refuses the folder
    assert "already holds a checkpoint" in capsys.readouterr().err
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-b")
    assert main([*cmd, "--until-step", "4"]) == 2  # another job's restart: refused too
    assert "already holds a checkpoint" in capsys.readouterr().err
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-a")
    assert main([*cmd, "--until-step", "4"]) == 0  # this job's restart: continues from step 2
    assert ckpt_of(run)["step"] == 4
    events = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(e["event"], e["step"]) for e in events if e.get("event") in ("start", "resume")] == [("start", 0),
                                                                                                 ("resume", 2)]
