"""Checkpoints that resume exactly: state dicts and plain containers only.

A checkpoint holds everything a run needs to continue as if it had never stopped:

    config       the resolved run config (plain dict)
    model        model.state_dict()            (main LSTM, classifier, decoder/predictor)
    optimizer    optimizer.state_dict()        (the LR schedule is a pure function of `step`)
    step         global steps done; the phase and the position in the data follow from it
    rng          one entry per rank: torch, CUDA, numpy, python and the anchor generator, as tensors/lists
    data         extra data state (decisions T10, D9), e.g. the pMNIST permutation, checked on resume
    wall_seconds training time spent so far over all slices
    elastic_run_id  TORCHELASTIC_RUN_ID of the torchrun job that wrote it (None without torchrun):
                 a restarted job resumes only its own checkpoint

Two checkpoints are kept, each carrying its own sha256:

    RUN/checkpoints/last.pt   the newest
    RUN/checkpoints/prev.pt   the one before it

and, with train.keep_best, a third that only evaluates (config, model, data, step, val_accuracy):

    RUN/checkpoints/best.pt   the evaluation with the highest validation accuracy

The checksum is inside the file, so no kill can separate a checkpoint from it: torch.save writes a zip
archive, and the archive's comment (the last bytes of the file) is "auxrnn-sha256 " and the hex sha256 of
every byte before it. torch.load reads such a file as it is. A save writes NAME.tmp (fsynced), renames
last.pt to prev.pt, then NAME.tmp to NAME, so a kill at any write or rename leaves last.pt or prev.pt
whole. The very first save builds the folder as RUN/.checkpoints.new and renames it into place: RUN/checkpoints
exists only once last.pt was completed (a best.pt kept before that waits in the new folder), and a run
killed before that simply starts again.

A load checks the checksum, then loads with `torch.load(weights_only=True)` (no pickled code); a file
without a checksum is refused. Resuming falls back to prev.pt with a warning when last.pt is missing,
unreadable, torn or corrupted (`resume_point`); a damaged best.pt is passed over with a warning. Checkpoints of
older versions, with the checksum in NAME.sha256 beside the file, still load, and rotate into the new form.
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
import random
from pathlib import Path

import numpy as np
import torch

FORMAT = 1
LAST = "last.pt"
PREV = "prev.pt"
BEST = "best.pt"
CHOICES = {"last": LAST, "best": BEST}  # what `find` (auxrnn eval/predict --checkpoint) chooses by name
FOLDER = "checkpoints"

log = logging.getLogger("auxrnn.train")


class CheckpointError(RuntimeError):
    """No checkpoint of a run could be loaded; the message names every file tried and why it failed."""


def capture_rng(anchor_gen: torch.Generator, device: torch.device) -> dict:
    """All RNG states of this process as tensors and lists (weights_only friendly)."""
    np_state = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "anchor": anchor_gen.get_state(),
        "numpy": {"kind": np_state[0], "key": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "python": {"version": py_version, "state": list(py_state), "gauss": py_gauss},
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict, anchor_gen: torch.Generator, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    anchor_gen.set_state(state["anchor"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _sidecar(path: Path) -> Path:
    """Where an older version kept the checksum of `path`."""
    return path.with_name(path.name + ".sha256")


SEAL = b"auxrnn-sha256 "
_COMMENT = len(SEAL) + 64  # the zip comment: SEAL and 64 hex digits
_END = b"PK\x05\x06"  # the zip end-of-central-directory record, 22 bytes plus the comment


def _sealed(data: bytes) -> list[bytes | memoryview]:
    """torch.save's bytes with their sha256 as the zip comment, as parts to write one after the other."""
    if len(data) < 22 or data[-22:-18] != _END or data[-2:] != b"\0\0":
        raise CheckpointError("torch.save wrote no zip archive without a comment; cannot seal the checkpoint")
    head = [memoryview(data)[:-2], _COMMENT.to_bytes(2, "little")]
    h = hashlib.sha256()
    for part in head:
        h.update(part)
    return [*head, SEAL, h.hexdigest().encode()]


def _seal_of(data: bytes) -> bool | None:
    """True: the file carries its checksum and matches it; False: it carries one and does not; None: none."""
    tail = data[-_COMMENT - 2:]
    if len(tail) < _COMMENT + 2 or tail[:2] != _COMMENT.to_bytes(2, "little") or not tail[2:].startswith(SEAL):
        return None
    return hashlib.sha256(memoryview(data)[:-_COMMENT]).hexdigest().encode() == tail[-64:]


def _write(path: Path, parts) -> None:
    """Write and fsync `parts` to `path`; a failed write (a full disk) leaves no file behind."""
    try:
        with open(path, "wb") as f:
            for part in parts:
                f.write(part)
            f.flush()
            os.fsync(f.fileno())
    except Exception:
        path.unlink(missing_ok=True)
        raise


def _sync_folder(folder: Path) -> None:
    """fsync a folder, so that the renames in it survive a power cut."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def staging(folder: Path) -> Path:
    """Where the first save builds RUN/checkpoints: RUN/.checkpoints.new."""
    return folder.with_name(f".{folder.name}.new")


def discard_unfinished(run_dir: Path) -> None:
    """Drop what a run killed before its first checkpoint staged (it starts again from step 0)."""
    import shutil

    shutil.rmtree(staging(Path(run_dir) / FOLDER), ignore_errors=True)


def save(path: Path, payload: dict, *, keep_previous: bool = True) -> None:
    """Write `path` (normally RUN/checkpoints/last.pt) with its checksum inside; the old one becomes prev.pt.
    The torchrun job writing it (TORCHELASTIC_RUN_ID) is recorded: only that job's restarts resume it by themselves.

    keep_previous=False (best.pt) replaces the old file instead of rotating it. Before the first last.pt the
    files go to the staging folder, which the first last.pt save renames into place (see the module docstring).
    """
    path = Path(path)
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "elastic_run_id": os.environ.get("TORCHELASTIC_RUN_ID"), **payload}, buf)
    parts = _sealed(buf.getvalue())
    folder = path.parent
    if not folder.is_dir():
        stage = staging(folder)
        stage.mkdir(parents=True, exist_ok=True)
        _write(stage / path.name, parts)
        if keep_previous:
            _sync_folder(stage)
            os.replace(stage, folder)
            _sync_folder(folder.parent)
        return
    tmp = path.with_name(path.name + ".tmp")
    _write(tmp, parts)
    if keep_previous and path.exists():
        _rotate(path, path.with_name(PREV))
    os.replace(tmp, path)
    _sync_folder(folder)
    _sidecar(path).unlink(missing_ok=True)  # an older version's checksum file, now stale


def _carries_seal(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(max(f.seek(0, os.SEEK_END) - _COMMENT - 2, 0))
        tail = f.read()
    return tail[:2] == _COMMENT.to_bytes(2, "little") and tail[2:].startswith(SEAL)


def _rotate(last: Path, prev: Path) -> None:
    """last.pt becomes prev.pt. An older version's last.pt (checksum beside it) is copied sealed instead,
    so that it is never separated from its checksum; one that does not verify is left to be replaced."""
    if not _carries_seal(last):
        data, side = last.read_bytes(), _sidecar(last)
        if not side.exists() or hashlib.sha256(data).hexdigest() != side.read_text().strip():
            return
        tmp = prev.with_name(prev.name + ".tmp")
        _write(tmp, _sealed(data))
        last = tmp
    os.replace(last, prev)
    _sidecar(prev).unlink(missing_ok=True)


def load(path: Path) -> dict:
    """Load a checkpoint on CPU with weights_only=True, after checking its sha256.

    Raises CheckpointError naming the file for a missing, unreadable, torn, corrupted, unchecked or foreign file.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{path} cannot be read ({exc.strerror or type(exc).__name__})") from None
    seal = _seal_of(data)
    side = _sidecar(path)
    if seal is False:
        raise CheckpointError(f"{path} does not match its checksum (torn or corrupted file)")
    if seal is None:
        try:
            want = side.read_text().strip()
        except FileNotFoundError:
            raise CheckpointError(f"{path} has no checksum, neither inside it nor in {side.name} beside it (a torn "
                                  "file, or not an auxrnn checkpoint); refusing to load it unverified") from None
        except OSError as exc:
            raise CheckpointError(f"{side} cannot be read ({exc.strerror or type(exc).__name__})") from None
        if hashlib.sha256(data).hexdigest() != want:
            raise CheckpointError(f"{path} does not match its checksum {side} (torn or corrupted file)")
    try:
        ckpt = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a damaged zip/pickle
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"{path} cannot be read as a checkpoint ({type(exc).__name__}: {first[:200]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an auxrnn checkpoint (format {FORMAT})")
    return ckpt


class Best:
    """RUN/checkpoints/best.pt (train.keep_best): the model of the evaluation with the highest validation
    accuracy so far; a tie keeps the earlier one, and the test split never takes part (decision T27)."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / FOLDER / BEST
        self.step: int | None = None
        self.val_accuracy: float | None = None

    def restore(self) -> None:
        """On resume: the kept file decides (it may be newer than the checkpoint the run resumes from). A
        damaged one never blocks a resume: it is passed over, and the next evaluation is kept in its place."""
        if not self.path.exists():
            return
        try:
            kept = load(self.path)
        except CheckpointError as exc:
            log.warning("%s; the best model is chosen again from the next evaluation on", exc)
            return
        self.step, self.val_accuracy = int(kept["step"]), float(kept["val_accuracy"])

    def offer(self, val_accuracy: float, step: int, write: bool, payload) -> None:
        """Keep the model of this evaluation if it is strictly better; `payload()` gives config, model, data."""
        if self.val_accuracy is not None and val_accuracy <= self.val_accuracy:
            return
        self.step, self.val_accuracy = step, val_accuracy
        if write:
            save(self.path, {**payload(), "step": step, "val_accuracy": val_accuracy}, keep_previous=False)

    def summary(self) -> dict:
        return {"best_checkpoint": str(self.path.relative_to(self.run_dir)), "best_step": self.step,
                "best_val_accuracy": self.val_accuracy}


def resume_point(run_dir: Path) -> tuple[dict | None, Path | None]:
    """The checkpoint a resumed run continues from: last.pt, else prev.pt (with a warning), else none.

    (None, None) when the run never completed a checkpoint (no RUN/checkpoints folder): it starts from step 0.
    Raises CheckpointError when the folder exists but neither file loads, so that a lost checkpoint never
    silently restarts a run from scratch.
    """
    folder = Path(run_dir) / FOLDER
    if not folder.is_dir():
        return None, None
    problems = []
    for name in (LAST, PREV):
        path = folder / name
        try:
            ckpt = load(path)
        except CheckpointError as exc:
            problems.append(str(exc))
            continue
        if problems:
            log.warning("%s; resuming from the previous checkpoint %s (step %d)", problems[0], path, ckpt["step"])
        return ckpt, path
    raise CheckpointError(
        f"cannot resume {run_dir}: " + "; ".join(problems) + f". To start this run again from step 0, delete "
        f"{folder}; to keep it, restore a checkpoint there")


def find(run_or_file: Path, which: str | None = None) -> Path:
    """A checkpoint file given a run folder and `which` ("last", the default, or "best") or the file itself."""
    p = Path(run_or_file).expanduser()
    if which not in (None, *CHOICES):
        raise ValueError(f"checkpoint {which!r} is unknown; choose one of {', '.join(CHOICES)}")
    if p.is_dir():
        name = CHOICES[which or "last"]
        p = p / FOLDER / name
        if name == BEST and not p.exists():
            raise FileNotFoundError(f"no best checkpoint at {p}: a run keeps one only when trained with "
                                    "train.keep_best=true and data.val_size > 0")
    elif which is not None:
        raise ValueError(f"{p}: choosing a checkpoint ({which!r}) needs a run folder, not a file")
    if not p.exists():
        raise FileNotFoundError(f"no checkpoint at {p}: give a run folder holding checkpoints/{LAST} or a .pt file")
    return p


def param_sha256(model: torch.nn.Module) -> str:
    """sha256 of every parameter and buffer's bytes, in state_dict order (a DDP consistency check)."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
