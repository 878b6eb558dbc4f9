"""Files of `auxrnn predict`: raw inputs read from .npy / .npz / .csv / IDX, predictions written as .npy / .csv.

    x, lengths = read_inputs("new.npz")              # x (N, T[, C]) or images (N, H, W[, 3]); lengths or None
    docs, _ = read_inputs("new.csv", documents=True)  # a byte-document model: N strings
    write_predictions("pred.csv", probs, labels)     # probs (N, K) float, labels (N,) int

Inputs:
    .npy   one array x, read memory-mapped (never unpickled)
    .npz   the names training reads: x (optional lengths, y) or the test split x_test (optional lengths_test,
           y_test); any other array is refused, except that a lone array of any name is x
    .csv   one item per row, no header: T numbers (or T * C, step-major: t0c0, t0c1, ..., t1c0, ...); for a
           byte-document model, rows title,content or class,title,content (the class is ignored), all alike,
           read as training reads them (`formats.read_documents`, decision D7)
    else   an IDX file (raw or .gz), e.g. t10k-images-idx3-ubyte: images (N, H, W)

Outputs (written under a temporary name, renamed once complete, so a failure leaves no partial file):
    .npy   a structured array of N records (label int64, probs float32 (K,)): ``a["label"]``, ``a["probs"]``
    .csv   a header ``label,p0,...,p{K-1}``, then one row per item

Every refusal is a ValueError naming the file.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from . import formats
from .array_files import (SINGLE_FIELDS, SINGLE_LENGTHS, SPLIT_FIELDS, SPLIT_LENGTHS, npz_array, open_npy,
                          open_npz)
from .integrity import atomic_path

INPUTS = ".npy, .npz, .csv or an IDX file"
OUTPUTS = (".npy", ".csv")


def read_inputs(path: str | os.PathLike, *, documents: bool = False,
                channels: int = 1) -> tuple[object, np.ndarray | None]:
    """(x, lengths or None) from `path`; x a numpy array, or a list of N str when `documents`.

    channels: C of the model; a CSV row of T * C numbers becomes (T, C), step-major.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file (inputs to predict on: {INPUTS})")
    suffix = p.suffix.lower()
    if documents and suffix != ".csv":
        raise ValueError(f"{p}: a byte-document model predicts on a .csv file of title,content rows, "
                         f"not {suffix or 'this'}")
    if suffix == ".npy":
        return open_npy(p, "x"), None
    if suffix == ".npz":
        return _npz(p)
    if suffix == ".csv":
        return (formats.read_documents(p), None) if documents else (_numbers(p, channels), None)
    try:
        return formats.read_idx(p), None
    except ValueError as exc:
        raise ValueError(f"{exc} (inputs to predict on: {INPUTS})") from None


# The .npz names training reads (auxrnn.data.array_files); predict reads the test split of the train/test layout.
NPZ_INPUTS = {"single": ("x", "lengths"), "split": ("x_test", "lengths_test")}


def _npz(p: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """x and lengths of an .npz: the names training reads, every other array refused (a misnamed lengths
    array would otherwise let padding be read as data); a lone array of any name is x."""
    known = set(SPLIT_FIELDS + SPLIT_LENGTHS + SINGLE_FIELDS + SINGLE_LENGTHS)
    with open_npz(p) as npz:
        names = list(npz.files)
        if len(names) == 1 and names[0] not in known:
            return npz_array(npz, p, names[0]), None
        unknown = sorted(set(names) - known)
        if unknown or not names:
            raise ValueError(f"{p}: holds {', '.join(names) or 'no arrays'}; name the inputs x (optional lengths, y) "
                             f"or x_test (optional lengths_test, y_test), as training reads them"
                             + (f" ({', '.join(unknown)} is none of these)" if unknown else ""))
        x_name, len_name = NPZ_INPUTS["split" if "x_test" in names else "single"]
        if x_name not in names:
            raise ValueError(f"{p}: holds {', '.join(names)} but no {x_name}, the inputs to predict on")
        x = npz_array(npz, p, x_name)
        lengths = npz_array(npz, p, len_name) if len_name in names else None
    return x, lengths


def _numbers(p: Path, channels: int) -> np.ndarray:
    """Rows of numbers (N, T) for one channel, (N, T, C) step-major for C."""
    rows = []
    for where, row in formats.csv_records(p):
        try:
            values = [float(v) for v in row]
        except ValueError:
            bad = next(v for v in row if not _is_number(v))
            raise ValueError(f"{where}: {bad!r} is not a number (one item per row, numbers only, no "
                             "header)") from None
        if rows and len(values) != len(rows[0]):
            raise ValueError(f"{where}: {len(values)} values, but the first row has {len(rows[0])}; "
                             "every item needs the same number of steps")
        rows.append(values)
    if not rows:
        raise ValueError(f"{p}: no rows")
    x = np.asarray(rows, dtype=np.float64)
    if channels == 1:
        return x
    if x.shape[1] % channels:
        raise ValueError(f"{p}: rows of {x.shape[1]} values cannot be read as (N, T, {channels}): {x.shape[1]} is not "
                         f"a multiple of the model's {channels} channels (t0c0, t0c1, ..., t1c0, ...)")
    return x.reshape(x.shape[0], -1, channels)


def _is_number(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def check_output(path: str | os.PathLike) -> Path:
    """The output path, refused before any work unless it ends in .npy or .csv."""
    p = Path(path).expanduser()
    if p.suffix.lower() not in OUTPUTS:
        raise ValueError(f"{p}: predictions are written as .npy or .csv, not {p.suffix or 'a file without suffix'}")
    return p


def write_predictions(path: str | os.PathLike, probs: np.ndarray, labels: np.ndarray) -> Path:
    """Write N predictions (probs (N, K), labels (N,)) to `path` (.npy or .csv), whole or not at all."""
    p = check_output(path)
    probs, labels = np.asarray(probs, dtype=np.float32), np.asarray(labels, dtype=np.int64)
    n, k = probs.shape
    with atomic_path(p) as tmp:
        if p.suffix.lower() == ".npy":
            out = np.empty(n, dtype=[("label", np.int64), ("probs", np.float32, (k,))])
            out["label"], out["probs"] = labels, probs
            with open(tmp, "wb") as f:
                np.save(f, out, allow_pickle=False)
        else:
            with open(tmp, "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["label", *(f"p{c}" for c in range(k))])
                for label, row in zip(labels, probs):
                    w.writerow([int(label), *(f"{v:.6g}" for v in row)])
    return p
