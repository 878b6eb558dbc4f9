"""Files of `auxrnn predict`: raw inputs read from .npy / .npz / .csv / IDX, predictions written as .npy / .csv.

    x, lengths = read_inputs("new.npz")              # x (N, T[, C]) or images (N, H, W[, 3]); lengths or None
    docs, _ = read_inputs("new.csv", documents=True)  # a byte-document model: N strings
    write_predictions("pred.csv", probs, labels)     # probs (N, K) float, labels (N,) int

Inputs:
    .npy   one array x, read memory-mapped (never unpickled)
    .npz   member x (else x_test, else its only member), and lengths (or lengths_test) when present
    .csv   one item per row, no header: T numbers (or T * C, step-major: t0c0, t0c1, ..., t1c0, ...); for a
           byte-document model, rows title,content or class,title,content (the class is ignored) read as the
           dataset reads them (decision D7)
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
from .array_files import open_npy
from .integrity import atomic_path

INPUTS = ".npy, .npz, .csv or an IDX file"
OUTPUTS = (".npy", ".csv")


def read_inputs(path: str | os.PathLike, *, documents: bool = False) -> tuple[object, np.ndarray | None]:
    """(x, lengths or None) from `path`; x a numpy array, or a list of N str when `documents`."""
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
        return (_documents(p), None) if documents else (_numbers(p), None)
    try:
        return formats.read_idx(p), None
    except ValueError as exc:
        raise ValueError(f"{exc} (inputs to predict on: {INPUTS})") from None


def _npz(p: Path) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        npz = np.load(p, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - not a zip, truncated
        raise ValueError(f"{p}: not a readable .npz archive ({exc})") from None
    with npz:
        names = list(npz.files)
        x_name = next((n for n in ("x", "x_test") if n in names), names[0] if len(names) == 1 else None)
        if x_name is None:
            raise ValueError(f"{p}: holds {', '.join(names) or 'no arrays'}; name the inputs x (optional lengths)")
        len_name = next((n for n in ("lengths", "lengths_test") if n in names), None)
        try:
            x = np.asarray(npz[x_name])
            lengths = None if len_name is None else np.asarray(npz[len_name])
        except ValueError as exc:  # an object array: never unpickled
            raise ValueError(f"{p}: {x_name} is not a numeric array ({exc})") from None
    return x, lengths


def _rows(p: Path):
    with open(p, "r", encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
        reader = csv.reader(f, strict=True)
        try:
            for row in reader:
                if row:
                    yield reader.line_num, row
        except csv.Error as exc:
            raise ValueError(f"{p}, line {reader.line_num}: malformed CSV ({exc})") from None


def _numbers(p: Path) -> np.ndarray:
    rows = []
    for line, row in _rows(p):
        try:
            values = [float(v) for v in row]
        except ValueError:
            bad = next(v for v in row if not _is_number(v))
            raise ValueError(f"{p}, line {line}: {bad!r} is not a number (one item per row, numbers only, no "
                             "header)") from None
        if rows and len(values) != len(rows[0]):
            raise ValueError(f"{p}, line {line}: {len(values)} values, but the first row has {len(rows[0])}; "
                             "every item needs the same number of steps")
        rows.append(values)
    if not rows:
        raise ValueError(f"{p}: no rows")
    return np.asarray(rows, dtype=np.float64)


def _is_number(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def _documents(p: Path) -> list[str]:
    docs = []
    for line, row in _rows(p):
        if len(row) == 3:
            row = row[1:]
        if len(row) != 2:
            raise ValueError(f"{p}, line {line}: expected title,content or class,title,content, got {len(row)} fields")
        title, content = row
        if not title.strip() and not content.strip():
            raise ValueError(f"{p}, line {line}: empty document (title and content are blank)")
        docs.append(f"{title} {content}")
    if not docs:
        raise ValueError(f"{p}: no rows")
    return docs


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
