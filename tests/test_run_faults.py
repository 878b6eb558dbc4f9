"""Faults a run must survive: a kill at any write or rename of a save, an unreadable or unchecked checkpoint,
the run lock under forks and races, a full disk, a read-only folder, a damaged config.yaml, and refused starts
that must change nothing.

Faults are injected in-process and deterministically. A kill is the `n`th write or rename of a checkpoint file
raising `Killed`, a BaseException, so that nothing catching Exception cleans up (as after kill -9); a killed
write leaves half of its bytes. A full disk is a write that stores half of its bytes, then fails with ENOSPC; a
read-only folder refuses every file opened for writing, folder made and rename in it with EROFS.
"""
from __future__ import annotations

import builtins
import contextlib
import errno
import fcntl
import hashlib
import io
import json
import logging
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from auxrnn.cli import main
from auxrnn.train import checkpoint, runs
from auxrnn.train.checkpoint import CheckpointError
from conftest import SAME_THREADS, tiny_args

TINY = [*tiny_args(16, 8), "train.pretrain_steps=1", "train.steps=3", "train.checkpoint_every=1", SAME_THREADS,
        "--no-progress"]


class Killed(BaseException):
    """A kill -9 at this point: nothing after it runs."""


class KillAt:
    """Counts the writes and renames of checkpoint files under `root` in `ops`; the `n`th one dies (0: none)."""

    def __init__(self, monkeypatch, root: Path, n: int = 0):
        self.root, self.n, self.ops = str(root), n, []
        real_write, real_replace = checkpoint._write, os.replace

        def write(path, parts):
            if self._hit("write", path):
                data = b"".join(bytes(p) for p in parts)
                with open(path, "wb") as f:
                    f.write(data[: len(data) // 2])
                raise Killed(f"write {path}")
            real_write(path, parts)

        def replace(src, dst, **kw):
            if self._hit("rename", dst):
                raise Killed(f"rename {src} -> {dst}")
            real_replace(src, dst, **kw)

        monkeypatch.setattr(checkpoint, "_write", write)
        monkeypatch.setattr(os, "replace", replace)

    def _hit(self, what: str, path) -> bool:
        if not str(path).startswith(self.root) or "checkpoints" not in str(path):
            return False
        self.ops.append((what, Path(path).name))
        return len(self.ops) == self.n


def _payload(step: int) -> dict:
    return {"step": step, "model": {"w": torch.full((16,), float(step))}, "val_accuracy": float(step)}


def _legacy(path: Path, step: int) -> None:
    """A checkpoint as versions before the sealed format wrote it: the file, its sha256 in NAME.sha256 beside."""
    buf = io.BytesIO()
    torch.save({"format": checkpoint.FORMAT, **_payload(step)}, buf)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    path.with_name(path.name + ".sha256").write_text(hashlib.sha256(buf.getvalue()).hexdigest() + "\n")


def _saves(run: Path, done: list) -> None:
    """A run's saves in order (best.pt first, before any last.pt), each recorded in `done` once complete."""
    folder = run / checkpoint.FOLDER
    for name, step in (("best", 1), ("last", 1), ("best", 2), ("last", 2), ("last", 3), ("best", 3)):
        checkpoint.save(folder / f"{name}.pt", _payload(step), keep_previous=name == "last")
        done.append((name, step))


@pytest.mark.parametrize("start", ["new", "older version"])
def test_a_kill_at_any_write_or_rename_of_a_save_leaves_the_newest_complete_checkpoint(tmp_path, monkeypatch, start):
    """last.pt, prev.pt and best.pt: whatever the save that is cut, the run resumes from the newest checkpoint
    that was completed (or from step 0 when none was), and a best.pt never blocks it."""
    def begin(run):
        if start == "older version":
            _legacy(run / "checkpoints" / "prev.pt", -2)
            _legacy(run / "checkpoints" / "last.pt", -1)

    begin(tmp_path / "count")
    counting = KillAt(monkeypatch, tmp_path / "count")
    _saves(tmp_path / "count", [])
    assert len(counting.ops) >= 12
    for n in range(1, len(counting.ops) + 1):
        run, done = tmp_path / f"kill{n}", []
        begin(run)
        KillAt(monkeypatch, run, n)
        with pytest.raises(Killed):
            _saves(run, done)
        where = f"killed at {counting.ops[n - 1]} after {done}"
        lasts = [s for name, s in done if name == "last"] or ([-1] if start == "older version" else [])
        bests = [s for name, s in done if name == "best"]
        ckpt, _ = checkpoint.resume_point(run)
        assert (ckpt and ckpt["step"]) == (lasts[-1] if lasts else None), where
        best = checkpoint.Best(run)
        best.restore()
        assert best.step == (bests[-1] if bests and lasts else None), where
        checkpoint.save(run / "checkpoints" / "last.pt", _payload(9))  # and the run goes on saving
        assert checkpoint.resume_point(run)[0]["step"] == 9


def test_an_older_versions_checkpoints_rotate_into_the_sealed_form(tmp_path):
    folder = tmp_path / "checkpoints"
    _legacy(folder / "prev.pt", 1)
    _legacy(folder / "last.pt", 2)
    assert checkpoint.load(folder / "last.pt")["step"] == 2
    checkpoint.save(folder / "last.pt", _payload(3))
    assert sorted(p.name for p in folder.iterdir()) == ["last.pt", "prev.pt"]
    assert checkpoint.load(folder / "prev.pt")["step"] == 2 and checkpoint.load(folder / "last.pt")["step"] == 3


def test_a_checkpoint_without_its_checksum_is_refused(tmp_path):
    last = tmp_path / "last.pt"
    _legacy(last, 1)
    data = bytearray(last.read_bytes())
    i = bytes(data).rfind(torch.full((16,), 1.0).numpy().tobytes())
    data[i + 3] ^= 0x01  # torch would load this silently
    last.write_bytes(bytes(data))
    last.with_name("last.pt.sha256").unlink()
    with pytest.raises(CheckpointError, match="last.pt has no checksum"):
        checkpoint.load(last)


def test_an_unreadable_last_checkpoint_falls_back_to_the_previous_one(tmp_path, monkeypatch, caplog):
    last = tmp_path / "checkpoints" / "last.pt"
    checkpoint.save(last, _payload(1))
    checkpoint.save(last, _payload(2))
    read = Path.read_bytes

    def failing(path):
        if path == last:
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(path))
        return read(path)

    monkeypatch.setattr(Path, "read_bytes", failing)
    with caplog.at_level(logging.WARNING, logger="auxrnn.train"):
        assert checkpoint.resume_point(tmp_path)[0]["step"] == 1
    assert "last.pt cannot be read (Input/output error)" in caplog.text
    monkeypatch.undo()
    last.unlink()
    last.mkdir()
    assert checkpoint.resume_point(tmp_path)[0]["step"] == 1
    assert "last.pt cannot be read (Is a directory)" in caplog.text


def test_a_damaged_best_checkpoint_never_blocks_a_resume(tmp_path, caplog):
    best_pt = tmp_path / "checkpoints" / "best.pt"
    checkpoint.save(tmp_path / "checkpoints" / "last.pt", _payload(5))
    checkpoint.save(best_pt, _payload(4), keep_previous=False)
    best_pt.write_bytes(best_pt.read_bytes()[:-10])
    best = checkpoint.Best(tmp_path)
    with caplog.at_level(logging.WARNING, logger="auxrnn.train"):
        best.restore()
    assert best.step is None and "best.pt" in caplog.text and "chosen again" in caplog.text
    best.offer(0.25, 6, True, lambda: {"model": {}})
    assert checkpoint.load(best_pt)["step"] == 6


def test_a_forked_child_does_not_keep_the_run_lock(tmp_path):
    """A DataLoader worker is a fork of the run's process: the lock must go with its holder, not with the worker."""
    run = tmp_path / "run"
    run.mkdir()  # a folder that stays, with its lock file, when the holder lets go
    r, w = os.pipe()
    started_r, started_w = os.pipe()
    with runs.owned(run):
        pid = os.fork()
        if pid == 0:  # the child says it runs, then waits for the pipe to close, holding whatever it kept
            try:
                os.close(w)
                os.write(started_w, b"1")
                os.read(r, 1)
            finally:
                os._exit(0)
        assert os.read(started_r, 1) == b"1"
    for fd in (r, started_r, started_w):
        os.close(fd)
    try:
        runs.refuse_if_owned(run)
        with runs.owned(run):
            pass
    finally:
        os.close(w)
        os.waitpid(pid, 0)


def test_the_loser_of_a_race_for_a_new_folder_touches_nothing(tmp_path, monkeypatch):
    """Both see no folder; the winner takes the lock just before the loser tries: the winner's lock file stays."""
    run = tmp_path / "new"
    real, winner = fcntl.flock, contextlib.ExitStack()

    def racing(fd, op):
        monkeypatch.setattr(fcntl, "flock", real)
        winner.enter_context(runs.owned(run))
        return real(fd, op)

    monkeypatch.setattr(fcntl, "flock", racing)
    with winner:
        with pytest.raises(runs.RunFolderBusy, match=f"process {os.getpid()} is training in it"):
            with runs.owned(run):
                pass
        assert (run / runs.LOCK_FILE).read_text().strip() == str(os.getpid())
        with pytest.raises(runs.RunFolderBusy):
            runs.refuse_if_owned(run)


class _FullFile:
    """A file on a full disk: a write stores half of its bytes, then fails with ENOSPC."""

    def __init__(self, f, name):
        self._f, self._name = f, str(name)

    def write(self, data):
        self._f.write(data[: len(data) // 2])
        self._f.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self._name)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


def full_disk(monkeypatch, match: str, after: int = 0) -> None:
    """Files whose path holds `match`, opened for writing after the first `after` of them, find the disk full."""
    real, opened = io.open, []

    def fake_open(file, mode="r", *args, **kwargs):
        f = real(file, mode, *args, **kwargs)
        if any(c in mode for c in "wax") and match in str(file):
            opened.append(file)
            if len(opened) > after:
                return _FullFile(f, file)
        return f

    monkeypatch.setattr(io, "open", fake_open)
    monkeypatch.setattr(builtins, "open", fake_open)


def read_only(monkeypatch, folder: Path) -> None:
    """Everything under `folder` is on a read-only file system (as root, chmod would not stop a write)."""
    inside = str(folder)

    def refuse(path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    real_open, real_os_open, real_mkdir, real_replace = io.open, os.open, os.mkdir, os.replace

    def fake_open(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+") and str(file).startswith(inside):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    def fake_os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and str(path).startswith(inside):
            refuse(path)
        return real_os_open(path, flags, *args, **kwargs)

    def fake_mkdir(path, *args, **kwargs):
        if str(path).startswith(inside):
            refuse(path)
        return real_mkdir(path, *args, **kwargs)

    def fake_replace(src, dst, **kwargs):
        if str(dst).startswith(inside):
            refuse(dst)
        return real_replace(src, dst, **kwargs)

    for module, name, fake in ((io, "open", fake_open), (builtins, "open", fake_open), (os, "open", fake_os_open),
                               (os, "mkdir", fake_mkdir), (os, "replace", fake_replace)):
        monkeypatch.setattr(module, name, fake)


def _one_error_line(err: str, command: str = "train") -> str:
    """The error line of a failed command: exactly one, and no traceback."""
    lines = [line for line in err.splitlines() if line.startswith(f"auxrnn {command}: error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _snapshot(folder: Path) -> dict:
    """Every file under `folder` but the lock, with its bytes and modification time."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != runs.LOCK_FILE}


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    """A run stopped with a checkpoint at step 3 of 4 (cosine schedule); tests take copies of it."""
    run = tmp_path_factory.mktemp("stopped") / "run"
    assert main(["train", *TINY, "optim.schedule=cosine", f"train.out={run}", "--until-step", "3"]) == 0
    return run


@pytest.fixture
def run(stopped_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(stopped_run, copy)
    return copy


@pytest.mark.parametrize("fault", ["full disk", "out of memory"])
def test_a_failed_checkpoint_is_one_line_and_keeps_the_checkpoints_before_it(tmp_path, monkeypatch, capsys, fault):
    run = tmp_path / "run"
    if fault == "full disk":
        full_disk(monkeypatch, "checkpoints", after=2)
    else:
        save, calls = checkpoint.save, []

        def failing(*args, **kwargs):
            calls.append(1)
            if len(calls) > 2:
                raise MemoryError()
            return save(*args, **kwargs)

        monkeypatch.setattr(checkpoint, "save", failing)
    assert main(["train", *TINY, f"train.out={run}"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert ("No space left on device" in line and "last.pt.tmp" in line) if fault == "full disk" else \
        line == "auxrnn train: error: out of memory (MemoryError: )"
    monkeypatch.undo()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.pt", "prev.pt"]
    assert checkpoint.load(run / "checkpoints" / "last.pt")["step"] == 2
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert json.loads((run / "summary.json").read_text())["status"] == "finished"


def test_config_yaml_is_written_whole_and_only_when_it_changes(run, monkeypatch, capsys):
    config = run / "config.yaml"
    text, stamp = config.read_text(), config.stat().st_mtime_ns
    full_disk(monkeypatch, "config.yaml")
    assert main(["train", "--resume", str(run), "train.log_every=2", "--until-step", "4"]) == 2
    assert "No space left on device" in _one_error_line(capsys.readouterr().err)
    assert config.read_text() == text and [p.name for p in run.glob("*config*")] == ["config.yaml"]
    assert main(["train", "--resume", str(run), "--no-progress"]) == 2  # a plain resume writes nothing there
    monkeypatch.undo()
    assert config.stat().st_mtime_ns == stamp
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0


@pytest.mark.parametrize("damage", ["cut short", "empty", "not a mapping", "not yaml"])
def test_a_damaged_config_yaml_gives_way_to_the_checkpoints_copy(run, caplog, damage):
    config = run / "config.yaml"
    text = config.read_text()
    config.write_text({"cut short": text[: len(text) // 2], "empty": "", "not a mapping": "- 1\n",
                       "not yaml": "data: !!python/object:os.system {}\n"}[damage])
    with caplog.at_level(logging.WARNING, logger="auxrnn.train"):
        cfg = runs.resume_config(run, {})
    assert "config.yaml is damaged" in caplog.text and "last.pt" in caplog.text
    saved = checkpoint.load(run / "checkpoints" / "last.pt")["config"]
    assert cfg.to_dict() == {**saved, "train": {**saved["train"], "out": str(run)}}
    shutil.rmtree(run / "checkpoints")
    with pytest.raises(ValueError, match="is damaged .* no checkpoint of the run holds its config"):
        runs.resume_config(run, {})


def test_a_run_resumes_after_its_config_yaml_was_cut_short(run):
    config = run / "config.yaml"
    text = config.read_text()
    config.write_text(text[:4096 if len(text) > 4096 else len(text) // 2])
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    saved = checkpoint.load(run / "checkpoints" / "last.pt")["config"]
    assert yaml.safe_load(config.read_text()) == saved and saved["train"]["out"] == str(run)


def test_a_read_only_run_folder_is_one_line_for_resume_eval_and_a_new_run(run, monkeypatch, capsys):
    before = _snapshot(run)
    read_only(monkeypatch, run)
    assert main(["train", "--resume", str(run), "--no-progress"]) == 2
    assert "Read-only file system" in _one_error_line(capsys.readouterr().err)
    assert main(["eval", str(run)]) == 2
    assert "Read-only file system" in _one_error_line(capsys.readouterr().err, "eval")
    assert main(["train", *TINY, f"train.out={run / 'new'}"]) == 2
    assert "Read-only file system" in _one_error_line(capsys.readouterr().err)
    monkeypatch.undo()
    assert _snapshot(run) == before and not (run / "new").exists()


def test_eval_json_is_replaced_whole_or_not_at_all(run, monkeypatch, capsys):
    assert main(["eval", str(run)]) == 0
    written = (run / "eval.json").read_text()
    full_disk(monkeypatch, "eval.json")
    assert main(["eval", str(run)]) == 2
    assert "No space left on device" in _one_error_line(capsys.readouterr().err, "eval")
    assert (run / "eval.json").read_text() == written and [p.name for p in run.glob("*eval*")] == ["eval.json"]


def test_a_refused_resume_changes_nothing(run, capsys):
    before = _snapshot(run)
    for argv, message in ((["train.steps=400"], "would move the learning rate at step 3"),
                          (["--until-step", "-3"], "--until-step -3: give a number of steps of at least 1"),
                          (["--until-step", "3"], "has already done 3 steps")):
        assert main(["train", "--resume", str(run), "--no-progress", *argv]) == 2
        out, err = capsys.readouterr()
        assert message in _one_error_line(err) and "# auxrnn train" not in out  # printed once the run starts
        assert _snapshot(run) == before
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0


def test_a_bad_until_step_for_a_new_run_makes_no_folder(tmp_path, capsys):
    assert main(["train", *TINY, f"train.out={tmp_path / 'run'}", "--until-step", "0"]) == 2
    assert "--until-step 0" in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "run").exists()


def test_a_data_file_claiming_a_huge_array_is_refused_before_a_run_folder_exists(tmp_path, capsys):
    x, y = np.zeros((8, 30), np.float32), np.arange(8) % 2
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (2**40, 30)})
    data = tmp_path / "d.npz"
    np.savez(data, x_train=x, y_train=y, x_test=x, y_test=y)
    with zipfile.ZipFile(data) as z:
        members = {name: z.read(name) for name in z.namelist()}
    members["x_train.npy"] = header.getvalue() + b"\0" * 64  # 4 TiB promised, 64 bytes given
    with zipfile.ZipFile(data, "w") as z:
        for name, body in members.items():
            z.writestr(name, body)
    run = tmp_path / "run"
    assert main(["train", "--preset", "none", "data.name=arrays", f"data.options.path={data}", "data.batch_size=4",
                 "model.subseq_len=10", "model.truncate=10", "model.aux_truncate=10", "train.steps=2", f"train.out={run}"]) == 2
    assert str(data) in _one_error_line(capsys.readouterr().err)
    assert not run.exists()


def test_a_label_of_two_to_the_forty_is_a_bad_file_not_an_out_of_memory(tmp_path, capsys):
    x, y = np.zeros((8, 30), np.float32), np.arange(8) % 2
    y_bad = y.astype(np.int64).copy()
    y_bad[5] = 2**40
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y_bad, x_test=x, y_test=y)
    run = tmp_path / "run"
    assert main(["train", "--preset", "none", "data.name=arrays", f"data.options.path={tmp_path / 'd.npz'}",
                 "data.batch_size=4", "model.subseq_len=10", "model.truncate=10", "model.aux_truncate=10",
                 "train.steps=2", f"train.out={run}"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "y_train" in line and str(2**40) in line and "row 5" in line and "oom" not in line.lower()
    assert not run.exists()


@pytest.mark.slow
@pytest.mark.determinism
def test_a_run_killed_at_any_write_or_rename_of_a_save_resumes_to_the_straight_runs_weights(tmp_path, monkeypatch):
    """Every evaluation keeps best.pt here, so that a run of two steps saves best.pt before the first checkpoint,
    the first last.pt (publishing the folder), a rotated last.pt and a best.pt replacing the one before."""
    args = [*tiny_args(16, 8), "data.val_size=8", "train.keep_best=true", "train.pretrain_steps=1", "train.steps=1",
            "train.eval_every=1", "train.checkpoint_every=1", "optim.schedule=cosine", SAME_THREADS, "--no-progress"]
    offer = checkpoint.Best.offer

    def always(best, *a, **kw):
        best.val_accuracy = None
        return offer(best, *a, **kw)

    monkeypatch.setattr(checkpoint.Best, "offer", always)
    straight = tmp_path / "straight"
    counting = KillAt(monkeypatch, straight)
    assert main(["train", *args, f"train.out={straight}"]) == 0
    assert {("rename", "checkpoints"), ("rename", "prev.pt"), ("rename", "last.pt"), ("rename", "best.pt")} <= \
        set(counting.ops)
    want = {name: checkpoint.load(straight / "checkpoints" / name) for name in ("last.pt", "best.pt")}
    for n in range(1, len(counting.ops) + 1):
        run = tmp_path / f"killed{n}"
        KillAt(monkeypatch, run, n)
        with pytest.raises(Killed):
            main(["train", *args, f"train.out={run}"])
        assert main(["train", "--resume", str(run), "--no-progress"]) == 0, counting.ops[n - 1]
        for name, ckpt in want.items():
            got = checkpoint.load(run / "checkpoints" / name)
            assert got["step"] == ckpt["step"], (counting.ops[n - 1], name)
            for key, value in ckpt["model"].items():
                assert torch.equal(got["model"][key], value), (counting.ops[n - 1], name, key)
        for sa, sb in zip(want["last.pt"]["optimizer"]["state"].values(),
                          checkpoint.load(run / "checkpoints" / "last.pt")["optimizer"]["state"].values()):
            assert all(torch.equal(sa[k], sb[k]) for k in sa), counting.ops[n - 1]
