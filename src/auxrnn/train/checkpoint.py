"""Checkpoints that resume exactly: state dicts and plain containers only.

A checkpoint holds everything a run needs to continue as if it had never stopped:

    config       the resolved run config (plain dict)
    model        model.state_dict()            (main LSTM, classifier, decoder/predictor)
    optimizer    optimizer.state_dict()        (the LR schedule is a pure function of `step`)
    step         global steps done; the phase and the position in the data follow from it
    rng          one entry per rank: torch, CUDA, numpy, python and the anchor generator, as tensors/lists
    data         extra data state, e.g. the pMNIST permutation, checked on resume
    wall_seconds training time spent so far over all slices

It is written to a temporary file and moved into place with os.replace, so a crash mid-write leaves the
previous checkpoint intact, and it loads with `torch.load(weights_only=True)`: no pickled code.
"""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

FORMAT = 1
LAST = "last.pt"


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


def save(path: Path, payload: dict) -> None:
    """Write atomically: a temporary file in the same folder, fsync, then os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save({"format": FORMAT, **payload}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load(path: Path) -> dict:
    """Load a checkpoint on CPU with weights_only=True."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path} is not an auxrnn checkpoint (format {FORMAT})")
    return ckpt


def find(run_or_file: Path) -> Path:
    """A checkpoint file given a run folder (RUN/checkpoints/last.pt) or the file itself."""
    p = Path(run_or_file)
    if p.is_dir():
        p = p / "checkpoints" / LAST
    if not p.exists():
        raise FileNotFoundError(f"no checkpoint at {p}: give a run folder holding checkpoints/{LAST} or a .pt file")
    return p
