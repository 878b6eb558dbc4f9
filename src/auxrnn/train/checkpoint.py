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

Two checkpoints are kept, each with its sha256 beside it:

    RUN/checkpoints/last.pt   last.pt.sha256     the newest
    RUN/checkpoints/prev.pt   prev.pt.sha256     the one before it

and, with train.keep_best, a third that only evaluates (config, model, data, step, val_accuracy):

    RUN/checkpoints/best.pt   best.pt.sha256     the evaluation with the highest validation accuracy

A save writes the new file under a temporary name, then rotates last -> prev and moves the new one
into place with os.replace, so a crash at any moment leaves at least one verified checkpoint. A load
checks the checksum and then loads with `torch.load(weights_only=True)` (no pickled code); resuming falls
back to prev.pt with a warning when last.pt is missing, torn or corrupted (`resume_point`).
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
    return path.with_name(path.name + ".sha256")


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def save(path: Path, payload: dict, *, keep_previous: bool = True) -> None:
    """Write `path` (normally RUN/checkpoints/last.pt) and its checksum; the old one becomes prev.pt. The
    torchrun job writing it (TORCHELASTIC_RUN_ID) is recorded: only that job's restarts resume it by themselves.

    Every file is written under a temporary name, fsynced and moved with os.replace; the rotation moves
    the old pair away before the new pair arrives, so no moment leaves a checkpoint beside a wrong checksum.
    keep_previous=False (best.pt) replaces the old pair instead of rotating it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "elastic_run_id": os.environ.get("TORCHELASTIC_RUN_ID"), **payload}, buf)
    data = buf.getvalue()
    tmp, tmp_sum = path.with_name(path.name + ".tmp"), path.with_name(path.name + ".sha256.tmp")
    _write(tmp, data)
    _write(tmp_sum, (hashlib.sha256(data).hexdigest() + "\n").encode())
    if path.exists() and not keep_previous:
        _sidecar(path).unlink(missing_ok=True)  # never the new file beside the old checksum
    elif path.exists():
        prev = path.with_name(PREV)
        os.replace(path, prev)
        if _sidecar(path).exists():
            os.replace(_sidecar(path), _sidecar(prev))
        else:
            _sidecar(prev).unlink(missing_ok=True)
    os.replace(tmp_sum, _sidecar(path))
    os.replace(tmp, path)


def load(path: Path) -> dict:
    """Load a checkpoint on CPU with weights_only=True, after checking its sha256 when one is beside it.

    Raises CheckpointError naming the file for a missing, torn, corrupted or foreign file.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}")
    data = path.read_bytes()
    side = _sidecar(path)
    if side.exists():
        want = side.read_text().strip()
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
        """On resume: the kept file decides (it may be newer than the checkpoint the run resumes from)."""
        if self.path.exists():
            kept = load(self.path)
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

    (None, None) when the run never wrote a checkpoint (no RUN/checkpoints folder): it starts from step 0.
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
