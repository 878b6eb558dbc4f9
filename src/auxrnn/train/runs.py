"""Run folders: where a new run goes, how a stopped one is picked up again.

    RUN/config.yaml          the resolved config (the source of truth on resume; written whole, and only
                             when it changes; a damaged one is replaced by the copy in the checkpoint)
    RUN/metrics.jsonl        one JSON line per log interval / evaluation / event
    RUN/tensorboard/         TensorBoard event files
    RUN/checkpoints/last.pt  the latest checkpoint (written atomically, its checksum inside: checkpoint.py)
    RUN/summary.json         status, test_accuracy, steps, epochs, wall_seconds, device, ...
    RUN/curves.png           loss and accuracy curves
    RUN/lock                 the pid of the process training in RUN; locked (fcntl) while it trains

A run folder has one owner: the process that trains in it holds an exclusive lock on RUN/lock for the
whole run (rank 0 alone under DDP), so a second `train --resume RUN` or `train.out=RUN` is refused. The
operating system drops the lock when its holder exits, crashed or killed, so a dead owner never blocks:
processes forked while it is held (DataLoader workers) close their copy at once, so none outlives its holder
with the lock. A process that loses the race for the lock touches nothing.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import logging
import os
from pathlib import Path
from typing import Any, Iterator

import yaml

from auxrnn.models.config import check_choice
from auxrnn.train import checkpoint
from auxrnn.train.config import RunConfig, build_config, from_dict, set_key, validate

CONFIG_FILE = "config.yaml"
LOCK_FILE = "lock"

log = logging.getLogger("auxrnn.train")

# Keys that may change when a run is resumed; everything else is fixed by the run's config.yaml
# (changing e.g. the model or the seed would make the resumed run a different run).
RESUMABLE_KEYS = ("train.device", "train.max_minutes", "train.eval_every", "train.log_every",
                  "train.checkpoint_every", "train.epochs", "train.steps", "train.tensorboard", "train.threads",
                  "data.workers", "data.eval_batch_size", "data.root")


def default_run_dir(cfg: RunConfig) -> Path:
    if cfg.train.out:
        return Path(cfg.train.out)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError("set train.out=RUN_DIR when launching with torchrun: every process must agree on the folder")
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.preset}-{stamp}"


def elastic_restart() -> int:
    """How often torchrun has restarted this job after a failure (TORCHELASTIC_RESTART_COUNT; 0 without torchrun)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)


def _restarted_job_of(run_dir: Path) -> bool:
    """Whether this is a torchrun restart (`--max-restarts K`) of the job that wrote run_dir's checkpoint:
    its checkpoint names this job's TORCHELASTIC_RUN_ID (a restart of another job's folder is refused)."""
    if elastic_restart() <= 0:
        return False
    ckpt, _ = checkpoint.resume_point(run_dir)
    return ckpt is not None and ckpt.get("elastic_run_id") == os.environ.get("TORCHELASTIC_RUN_ID")


def new_run(preset: str | None, overrides: dict[str, Any]) -> tuple[RunConfig, Path]:
    """Config and folder of a fresh run; refuses a folder that already holds a checkpoint, except the job's
    own after a torchrun restart (the caller then resumes it: `elastic_restart`)."""
    cfg = check_dataset(build_config(preset, overrides))
    run_dir = default_run_dir(cfg)
    cfg.train.out = str(run_dir)
    refuse_if_owned(run_dir)
    if (run_dir / "checkpoints" / "last.pt").exists() and not _restarted_job_of(run_dir):
        raise ValueError(f"run folder {run_dir} already holds a checkpoint: continue it with "
                         f"`auxrnn train --resume {run_dir}` or choose another train.out")
    return cfg, run_dir


def check_dataset(cfg: RunConfig) -> RunConfig:
    """data.name against the data layer's registry, the one list of dataset names (the config schema imports
    no data code). Returns cfg."""
    from auxrnn.data import DATASETS

    check_choice("data.name", cfg.data.name, tuple(DATASETS))
    return cfg


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` by `text` whole (a temporary file, fsynced, renamed over it); on a failure, such as a
    full disk, `path` stays as it was and the temporary file is removed."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except Exception:
        tmp.unlink(missing_ok=True)
        raise


def saved_config(run_dir: Path) -> dict:
    """RUN/config.yaml as a dict; a damaged one (cut short by a full disk, emptied, edited into invalid YAML)
    gives way, with a warning, to the config saved in the run's checkpoint."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        raise FileNotFoundError(f"{run_dir} is not a run folder: no {CONFIG_FILE}")
    try:
        raw = yaml.safe_load(path.read_text())
        problem = None if isinstance(raw, dict) else f"it holds no mapping of keys but {type(raw).__name__}"
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        problem = getattr(exc, "problem", None) or " ".join(str(exc).split())[:200]
    if problem is None:
        return raw
    try:
        ckpt, where = checkpoint.resume_point(run_dir)
    except checkpoint.CheckpointError:
        ckpt = None
    if ckpt is None:
        raise ValueError(f"{path} is damaged ({problem}) and no checkpoint of the run holds its config; restore "
                         f"{CONFIG_FILE}, or delete {run_dir} to start again")
    log.warning("%s is damaged (%s); using the config saved in %s", path, problem, where)
    return ckpt["config"]


def resume_config(run_dir: Path, overrides: dict[str, Any]) -> RunConfig:
    """The saved config of `run_dir`, with the few overrides a resume allows."""
    refuse_if_owned(run_dir)
    cfg = from_dict(saved_config(run_dir))
    for key, value in overrides.items():
        if key not in RESUMABLE_KEYS:
            raise ValueError(f"{key} cannot change when resuming (it would make a different run); keys that may: "
                             f"{', '.join(RESUMABLE_KEYS)}")
        set_key(cfg, key, value)
    cfg.train.out = str(run_dir)
    return check_dataset(validate(cfg))


class RunFolderBusy(RuntimeError):
    """Another live process trains in this run folder."""


def _busy(run_dir: Path, fd: int) -> RunFolderBusy:
    pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
    return RunFolderBusy(f"run folder {run_dir} is in use: process {pid} is training in it (it holds "
                         f"{Path(run_dir) / LOCK_FILE}); wait for it to end or stop it, then resume the run")


def refuse_if_owned(run_dir: Path) -> None:
    """Raise RunFolderBusy when a live process holds the folder's lock; creates nothing. Rank 0 only (under
    DDP rank 0 takes the lock, so the other ranks would find it held)."""
    if int(os.environ.get("RANK", "0")) != 0:
        return
    try:
        fd = os.open(Path(run_dir) / LOCK_FILE, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _busy(run_dir, fd) from None
    finally:
        os.close(fd)  # closing drops the probe's own shared lock


_HELD: set[int] = set()  # descriptors of the run locks this process holds


def _drop_held_locks() -> None:
    """In a forked child (a DataLoader worker): close the inherited lock descriptors, so that the lock goes
    with its holder (flock's lock lives until every descriptor sharing it is closed)."""
    for fd in _HELD:
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


os.register_at_fork(after_in_child=_drop_held_locks)


@contextlib.contextmanager
def owned(run_dir: Path, owner: bool = True) -> Iterator[None]:
    """Hold the exclusive lock of `run_dir` (creating the folder) for the body; RunFolderBusy if taken.

    `owner=False` (the ranks other than 0 under DDP) takes nothing. The lock file keeps the holder's pid.
    A folder made here that holds nothing else at the end (a run refused before its first write) is removed,
    by the lock's holder only: the loser of a race never touches the winner's folder.
    """
    if not owner:
        yield
        return
    run_dir = Path(run_dir)
    made = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    held = False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(run_dir, fd) from None
        held = True
        _HELD.add(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        _HELD.discard(fd)
        if held and made and [p.name for p in run_dir.iterdir()] == [LOCK_FILE]:
            (run_dir / LOCK_FILE).unlink()
            with contextlib.suppress(OSError):  # someone else's files arrived meanwhile: the folder stays
                run_dir.rmdir()
        os.close(fd)  # releases the lock; the file stays (an unlocked lock file means no owner)
