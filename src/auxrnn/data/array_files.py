"""NumPy arrays on disk for the `arrays` source: find the layout, open each array, check it, read it in blocks.

No torch here. `.npy` files are memory-mapped (``np.load(mmap_mode="r", allow_pickle=False)``), so a
file larger than memory is read one block of rows at a time; an `.npz` member is read whole. Every
check raises ValueError naming the file and the array (docs/data.md, "Any NumPy arrays").
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from numpy.lib import format as fmt

from .quantize import Sampler

SPLIT_FIELDS = ("x_train", "y_train", "x_test", "y_test")
SPLIT_LENGTHS = ("lengths_train", "lengths_test")
SINGLE_FIELDS = ("x", "y")
SINGLE_LENGTHS = ("lengths",)
CHUNK_BYTES = 32 << 20  # rows read at once while checking and fitting (a memory-mapped file is streamed)
SPLIT_SALT = 0x5B17  # the x/y split: default_rng([split_seed, salt]), never the training seed (decision D9)

EXPECTED = (
    "x_train, y_train, x_test, y_test (optional lengths_train, lengths_test), "
    "or x and y (optional lengths) with option test_size"
)


class MissingArrayFile(FileNotFoundError, ValueError):
    """An expected array file (or the path itself) is absent; both a FileNotFoundError and a ValueError."""


# ------------------------------------------------------------------------------------------- opening
class Field:
    """One array of the source: its name (x_train, y, ...), the file shown in messages, the array itself."""

    def __init__(self, name: str, where: Path, array: np.ndarray, npy: Path | None):
        self.name, self.where, self.array, self.npy = name, where, array, npy

    def __str__(self) -> str:
        return f"{self.where}: {self.name}"


def _object_error(where: Path, field: str) -> ValueError:
    return ValueError(
        f"{where}: {field} holds Python objects (dtype object), which auxrnn never unpickles (allow_pickle=False); "
        f"save a numeric array instead, e.g. np.save(path, np.asarray({field.split('_')[0]}, dtype=np.float32))"
    )


def open_npy(path: Path, field: str) -> np.ndarray:
    """A .npy file memory-mapped read-only (never unpickled); an empty array is returned in memory."""
    try:
        with open(path, "rb") as f:
            version = fmt.read_magic(f)
            read = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(version)
            if read is None:  # format 3.0 (utf-8 field names): numpy's own reader of any version
                shape, _, dtype = fmt._read_array_header(f, version)
            else:
                shape, _, dtype = read(f)  # the header only
    except OSError:
        raise
    except Exception as exc:  # not an .npy file, truncated header
        raise ValueError(f"{path}: {field} is not a readable .npy array ({exc})") from None
    if dtype.hasobject:
        raise _object_error(path, field)
    if int(np.prod(shape, dtype=np.int64)) == 0:
        return np.empty(shape, dtype=dtype)
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        if "object" in str(exc).lower():
            raise _object_error(path, field) from None
        raise ValueError(f"{path}: {field} is not a readable .npy array ({exc})") from None


def npz_array(npz, path: Path, field: str) -> np.ndarray:
    """Member `field` of an open .npz, never unpickled; an object array is refused naming that member."""
    try:
        value = npz[field]
    except ValueError as exc:
        if "object" in str(exc).lower() or "pickle" in str(exc).lower():
            raise _object_error(path, field) from None
        raise ValueError(f"{path}: {field} is not a readable array ({exc})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ValueError(f"{path}: {field} is not a readable array ({exc})") from None
    if not isinstance(value, np.ndarray):  # numpy hands back the raw bytes of a member that is not .npy
        raise ValueError(f"{path}: {field} is not a readable array (the member is not an .npy file)")
    return value


def open_npz(p: Path):
    """An .npz archive opened without unpickling; anything that is not a zip is refused as such."""
    if not zipfile.is_zipfile(p):
        raise ValueError(f"{p}: not an .npz archive (a zip of .npy arrays, as np.savez writes)")
    try:
        return np.load(p, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - a damaged zip
        raise ValueError(f"{p}: not a readable .npz archive ({exc})") from None


def _layout(present: set[str], where: Path, kind: str) -> tuple[str, tuple[str, ...]]:
    """("split" | "single", the fields to read) for the array names `present` in `where`."""
    ext = ".npy" if kind == "folder" else ""
    split_any = present & set(SPLIT_FIELDS + SPLIT_LENGTHS)
    single_any = present & set(SINGLE_FIELDS + SINGLE_LENGTHS)
    if split_any and single_any:
        raise ValueError(f"{where}: holds both {', '.join(sorted(n + ext for n in split_any))} and "
                         f"{', '.join(sorted(n + ext for n in single_any))}; keep one layout (expected {EXPECTED})")
    if split_any:
        missing = [n + ext for n in SPLIT_FIELDS if n not in present]
        if missing:
            raise MissingArrayFile(
                f"{where}: missing {', '.join(missing)}; the train/test layout needs "
                f"{', '.join(n + ext for n in SPLIT_FIELDS)} (optional {', '.join(n + ext for n in SPLIT_LENGTHS)})")
        have = [n for n in SPLIT_LENGTHS if n in present]
        if len(have) == 1:
            other = SPLIT_LENGTHS[1] if have[0] == SPLIT_LENGTHS[0] else SPLIT_LENGTHS[0]
            raise ValueError(f"{where}: {have[0] + ext} is there but {other + ext} is not; give the lengths of "
                             "both splits or of neither")
        return "split", SPLIT_FIELDS + tuple(have)
    if single_any:
        missing = [n + ext for n in SINGLE_FIELDS if n not in present]
        if missing:
            raise MissingArrayFile(f"{where}: missing {', '.join(missing)}; the single layout needs "
                                   f"{', '.join(n + ext for n in SINGLE_FIELDS)} (optional lengths{ext})")
        return "single", SINGLE_FIELDS + tuple(n for n in SINGLE_LENGTHS if n in present)
    names = (f"{', '.join(n + '.npy' for n in SPLIT_FIELDS)} (optional {', '.join(n + '.npy' for n in SPLIT_LENGTHS)}), "
             "or x.npy and y.npy (optional lengths.npy) with option test_size") if kind == "folder" else EXPECTED
    raise MissingArrayFile(f"{where}: no arrays found; expected {names}")


def open_arrays(path: str | os.PathLike) -> tuple[str, dict[str, Field]]:
    """The layout ("split" or "single") and the named arrays of `path` (a folder of .npy files or an .npz)."""
    p = Path(path).expanduser()
    if p.is_dir():
        present = {n for n in SPLIT_FIELDS + SPLIT_LENGTHS + SINGLE_FIELDS + SINGLE_LENGTHS if (p / f"{n}.npy").is_file()}
        layout, names = _layout(present, p, "folder")
        return layout, {n: Field(n, p / f"{n}.npy", open_npy(p / f"{n}.npy", n), p / f"{n}.npy") for n in names}
    if p.is_file():
        if p.suffix.lower() != ".npz":
            raise ValueError(f"{p}: the arrays dataset reads a folder of .npy files or an .npz file, not {p.suffix or 'this'} "
                             f"(expected {EXPECTED})")
        with open_npz(p) as npz:
            present = set(npz.files)
            known = set(SPLIT_FIELDS + SPLIT_LENGTHS + SINGLE_FIELDS + SINGLE_LENGTHS)
            unknown = sorted(present - known)
            if unknown:
                raise ValueError(f"{p}: unexpected array(s) {', '.join(unknown)}; an .npz holds {EXPECTED}")
            layout, names = _layout(present, p, "npz")
            return layout, {n: Field(n, p, npz_array(npz, p, n), None) for n in names}
    raise MissingArrayFile(f"{p}: no such file or folder (the arrays dataset reads a folder of .npy files or an "
                           f".npz file holding {EXPECTED})")


# ------------------------------------------------------------------------------------------- checks
def kind_of(dtype: np.dtype) -> str:
    if np.issubdtype(dtype, np.floating):
        return "real"
    if np.issubdtype(dtype, np.integer) or dtype == np.bool_:
        return "integer"
    return "other"


def check_x(f: Field) -> None:
    a = f.array
    if a.ndim not in (2, 3):
        raise ValueError(f"{f}: must have shape (N, T) or (N, T, C), got {a.shape}")
    if kind_of(a.dtype) == "other":
        raise ValueError(f"{f}: must hold real numbers or integers, got dtype {a.dtype}")
    if a.size == 0:
        raise ValueError(f"{f}: is empty (shape {a.shape}); every split needs at least one item of at least one step"
                         f"{' and channel' if a.ndim == 3 else ''}")


def check_n(f: Field, x: Field, what: str) -> None:
    if f.array.ndim != 1:
        raise ValueError(f"{f}: must have shape (N,) ({what}), got {f.array.shape}")
    if f.array.shape[0] != x.array.shape[0]:
        raise ValueError(f"{f}: has {f.array.shape[0]} entries but {x} has {x.array.shape[0]} items; N must agree")


def read_labels(f: Field) -> np.ndarray:
    a = f.array
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{f}: must hold integer class labels, got dtype {a.dtype} (convert with "
                         "y.astype(np.int64) if the values are whole numbers)")
    y = np.asarray(a).astype(np.int64)
    if y.size and y.min() < 0:
        r = int(np.argmax(y < 0))
        raise ValueError(f"{f}: holds label {int(y[r])} at row {r}; labels must be 0..n_classes-1")
    return y


def read_lengths(f: Field, x: Field) -> np.ndarray:
    a = f.array
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{f}: must hold integer lengths, got dtype {a.dtype}")
    n = np.asarray(a).astype(np.int64)
    T = x.array.shape[1]
    bad = (n < 1) | (n > T)
    if bad.any():
        r = int(np.argmax(bad))
        raise ValueError(f"{f}: holds length {int(n[r])} at row {r}, outside 1..{T} (the {T} steps of {x.name})")
    return n


class Part:
    """One split of the source: x (maybe memory-mapped), the rows of x it uses, labels and lengths in memory."""

    def __init__(self, label: str, x: Field, rows: np.ndarray | None, y: np.ndarray, y_field: Field,
                 lengths: np.ndarray | None):
        self.label, self.x, self.rows, self.y, self.y_field, self.lengths = label, x, rows, y, y_field, lengths

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def row(self, i: int) -> int:
        return int(i if self.rows is None else self.rows[i])

    @property
    def total(self) -> int:
        """Real positions (per channel)."""
        return int(self.lengths.sum()) if self.lengths is not None else len(self) * int(self.x.array.shape[1])

    def blocks(self) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
        """(first item, block (n, T, C) read from the file, mask (n, T) of real positions or None), streamed."""
        a = self.x.array
        T = int(a.shape[1])
        C = int(a.shape[2]) if a.ndim == 3 else 1
        step = max(1, CHUNK_BYTES // max(1, T * C * a.dtype.itemsize))
        for s in range(0, len(self), step):
            e = min(len(self), s + step)
            block = np.asarray(a[s:e] if self.rows is None else a[self.rows[s:e]]).reshape(e - s, T, C)
            mask = None
            if self.lengths is not None:
                mask = np.arange(T)[None, :] < self.lengths[s:e, None]
            yield s, block, mask


def scan(part: Part, sampler: Sampler | None) -> tuple[np.ndarray, np.ndarray]:
    """Check the real positions of `part` chunk by chunk (finite values); per-channel (min, max); feed `sampler`."""
    a = part.x.array
    C = int(a.shape[2]) if a.ndim == 3 else 1
    real = kind_of(a.dtype) == "real"
    lo = np.full(C, np.inf)
    hi = np.full(C, -np.inf)
    for s, block, mask in part.blocks():
        vals = block.reshape(-1, C) if mask is None else block[mask]  # (m, C) real positions
        if real:
            ok = np.isfinite(vals)
            if not ok.all():
                full = np.isfinite(block) | (~mask[..., None] if mask is not None else False)
                i, t, c = (int(v[0]) for v in np.nonzero(~full))
                what = "NaN" if np.isnan(block[i, t, c]) else "inf"
                raise ValueError(f"{part.x}: holds {what} at row {part.row(s + i)}, step {t}, channel {c}; real "
                                 "positions must be finite (positions at or after an item's length are padding "
                                 "and may hold anything)")
        if vals.size:
            lo = np.minimum(lo, vals.min(axis=0).astype(np.float64))
            hi = np.maximum(hi, vals.max(axis=0).astype(np.float64))
        if sampler is not None:
            sampler.add(vals)
    return lo, hi


def first_outside(part: Part, vocab: np.ndarray) -> tuple[int, int, int, int] | None:
    """(row, step, channel, value) of the first real position of `part` outside 0..vocab[c]-1, or None."""
    for s, block, mask in part.blocks():
        bad = (block < 0) | (block >= vocab[None, None, :])
        if mask is not None:
            bad &= mask[..., None]
        if bad.any():
            i, t, c = (int(v[0]) for v in np.nonzero(bad))
            return part.row(s + i), t, c, int(block[i, t, c])
    return None


def parse_test_size(test_size: Any, n: int, where: str) -> int:
    """The number of test items: a fraction in (0, 1) of `n` (rounded), or a count."""
    v = test_size
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            v = None
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise ValueError(f"test_size must be a fraction in (0, 1) or a number of items, got {test_size!r}")
    v = float(v)
    count = int(round(v * n)) if 0 < v < 1 else int(v) if v.is_integer() else -1
    if not 1 <= count <= n - 1:
        raise ValueError(f"test_size={test_size!r} leaves an empty split of the {n} items of {where}: give a fraction "
                         f"in (0, 1) or a count in 1..{n - 1}")
    return count


# ------------------------------------------------------------------------------------------- dataset
