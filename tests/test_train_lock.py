"""A run folder has one owner: a second process is refused while the first trains; a dead owner never blocks."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from auxrnn.cli import main
from auxrnn.train.runs import LOCK_FILE, RunFolderBusy, owned, refuse_if_owned
from conftest import tiny_args


def _snapshot(folder):
    """Every file under `folder` with its size and modification time (what a refused process must not touch)."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _wait_for_owner(run, proc) -> int:
    """The pid written in RUN/lock once `proc` has taken the lock (and written its config)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        lock, config = run / LOCK_FILE, run / "config.yaml"
        if lock.exists() and config.exists() and lock.read_text().strip():
            return int(lock.read_text())
        time.sleep(0.02)
    raise AssertionError(f"the first run never took its lock (exit code {proc.poll()})")


@pytest.mark.slow
def test_a_second_process_is_refused_while_the_first_trains_and_the_first_finishes(tmp_path, capsys):
    run = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "auxrnn", "train", *tiny_args(32, 16), "train.steps=30",
                              f"train.out={run}", "--no-progress"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert _wait_for_owner(run, first) == first.pid
        first.send_signal(signal.SIGSTOP)  # holds the lock, writes nothing: the folder stays as it is
        before = _snapshot(run)
        for argv in (["train", "--resume", str(run), "--no-progress"],
                     ["train", *tiny_args(32, 16), "train.steps=30", f"train.out={run}", "--no-progress"]):
            assert main(argv) == 2
            err = capsys.readouterr().err
            assert f"process {first.pid} is training in it" in err and "Traceback" not in err
        assert _snapshot(run) == before
    finally:
        first.send_signal(signal.SIGCONT)
        _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["steps"] == 30
    refuse_if_owned(run)  # the lock went with its owner


@pytest.mark.slow
def test_a_killed_owner_does_not_block_the_folder(tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c",
                               "import sys, time\nfrom auxrnn.train.runs import owned\n"
                               "with owned(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(600)\n",
                               str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunFolderBusy, match=f"process {holder.pid} "):
            refuse_if_owned(run)
        with pytest.raises(RunFolderBusy, match=f"process {holder.pid} "):
            with owned(run):
                pass
    finally:
        holder.kill()
        holder.wait()
    assert (run / LOCK_FILE).exists()  # left behind by the crash, yet nobody holds it
    refuse_if_owned(run)
    with owned(run):
        assert (run / LOCK_FILE).read_text().strip() == str(os.getpid())


def test_only_rank_0_owns_the_folder(tmp_path, monkeypatch):
    run = tmp_path / "run"
    with owned(run, owner=False):
        assert not run.exists()
    with owned(run):
        monkeypatch.setenv("RANK", "1")
        refuse_if_owned(run)  # rank 1 of the same run: rank 0 holds the lock, so rank 1 does not look
        monkeypatch.setenv("RANK", "0")
        with pytest.raises(RunFolderBusy):
            refuse_if_owned(run)


def test_a_folder_made_for_a_refused_run_is_removed(tmp_path):
    run = tmp_path / "new" / "run"
    with pytest.raises(ValueError, match="refused"):
        with owned(run):
            assert (run / LOCK_FILE).exists()
            raise ValueError("refused before the first write")
    assert not run.exists()
    run.mkdir(parents=True)
    with owned(run):
        pass
    assert run.exists()  # a folder that was there before stays
