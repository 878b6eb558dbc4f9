"""Any NumPy arrays as a dataset: a folder of .npy files or one .npz archive (docs/data.md, decision D9).

Layouts (option `path`):

    <folder>/x_train.npy y_train.npy x_test.npy y_test.npy [lengths_train.npy lengths_test.npy]
    <file>.npz holding x_train y_train x_test y_test [lengths_train lengths_test]
    <folder>/x.npy y.npy [lengths.npy] or an .npz holding x y [lengths], split by `test_size` / `split_seed`

x is (N, T) or (N, T, C) of real numbers or integers, y (N,) integer classes, lengths (N,) in 1..T (positions at
or after an item's length are padding: never read into an item, never checked, never fitted). `.npy` files are
memory-mapped (``np.load(mmap_mode="r", allow_pickle=False)``): an item reads only its own row, so a file larger
than memory trains; an `.npz` cannot be memory-mapped and is read whole into memory. Nothing is ever written.

Real inputs become tokens through a `Quantiser` fitted on the training split only (the test split refits it from
the training files, so both splits map a value to the same token); integer inputs in 0..max_vocab-1 are used as
tokens directly, with vocabulary max + 1 of the training split per channel.
"""
from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path
from typing import Any, ClassVar, Iterator

import numpy as np
import torch
from numpy.lib import format as fmt

from ..quantize import MAX_FIT_VALUES, Quantiser, Sampler, check_bins, check_kind, token_dtype
from .base import SequenceDataset, Shape

SPLIT_FIELDS = ("x_train", "y_train", "x_test", "y_test")
SPLIT_LENGTHS = ("lengths_train", "lengths_test")
SINGLE_FIELDS = ("x", "y")
SINGLE_LENGTHS = ("lengths",)
CHUNK_BYTES = 32 << 20  # rows read at once while checking and fitting (a memory-mapped file is streamed)
_SPLIT_SALT = 0x5B17  # the x/y split: default_rng([split_seed, salt]), never the training seed

_EXPECTED = (
    "x_train, y_train, x_test, y_test (optional lengths_train, lengths_test), "
    "or x and y (optional lengths) with option test_size"
)


class MissingArrayFile(FileNotFoundError, ValueError):
    """An expected array file (or the path itself) is absent; both a FileNotFoundError and a ValueError."""


# ------------------------------------------------------------------------------------------- opening
class _Field:
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


def _npz_array(npz, path: Path, field: str) -> np.ndarray:
    try:
        return np.asarray(npz[field])
    except ValueError as exc:
        if "object" in str(exc).lower() or "pickle" in str(exc).lower():
            raise _object_error(path, field) from None
        raise ValueError(f"{path}: {field} is not a readable array ({exc})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ValueError(f"{path}: {field} is not a readable array ({exc})") from None


def _layout(present: set[str], where: Path, kind: str) -> tuple[str, tuple[str, ...]]:
    """("split" | "single", the fields to read) for the array names `present` in `where`."""
    ext = ".npy" if kind == "folder" else ""
    split_any = present & set(SPLIT_FIELDS + SPLIT_LENGTHS)
    single_any = present & set(SINGLE_FIELDS + SINGLE_LENGTHS)
    if split_any and single_any:
        raise ValueError(f"{where}: holds both {', '.join(sorted(n + ext for n in split_any))} and "
                         f"{', '.join(sorted(n + ext for n in single_any))}; keep one layout (expected {_EXPECTED})")
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
             "or x.npy and y.npy (optional lengths.npy) with option test_size") if kind == "folder" else _EXPECTED
    raise MissingArrayFile(f"{where}: no arrays found; expected {names}")


def open_arrays(path: str | os.PathLike) -> tuple[str, dict[str, _Field]]:
    """The layout ("split" or "single") and the named arrays of `path` (a folder of .npy files or an .npz)."""
    p = Path(path).expanduser()
    if p.is_dir():
        present = {n for n in SPLIT_FIELDS + SPLIT_LENGTHS + SINGLE_FIELDS + SINGLE_LENGTHS if (p / f"{n}.npy").is_file()}
        layout, names = _layout(present, p, "folder")
        return layout, {n: _Field(n, p / f"{n}.npy", open_npy(p / f"{n}.npy", n), p / f"{n}.npy") for n in names}
    if p.is_file():
        if p.suffix.lower() != ".npz":
            raise ValueError(f"{p}: the arrays dataset reads a folder of .npy files or an .npz file, not {p.suffix or 'this'} "
                             f"(expected {_EXPECTED})")
        try:
            npz = np.load(p, allow_pickle=False)
        except Exception as exc:
            raise ValueError(f"{p}: not a readable .npz archive ({exc})") from None
        with npz:
            present = set(npz.files)
            known = set(SPLIT_FIELDS + SPLIT_LENGTHS + SINGLE_FIELDS + SINGLE_LENGTHS)
            unknown = sorted(present - known)
            if unknown:
                raise ValueError(f"{p}: unexpected array(s) {', '.join(unknown)}; an .npz holds {_EXPECTED}")
            layout, names = _layout(present, p, "npz")
            return layout, {n: _Field(n, p, _npz_array(npz, p, n), None) for n in names}
    raise MissingArrayFile(f"{p}: no such file or folder (the arrays dataset reads a folder of .npy files or an "
                           f".npz file holding {_EXPECTED})")


# ------------------------------------------------------------------------------------------- checks
def _kind(dtype: np.dtype) -> str:
    if np.issubdtype(dtype, np.floating):
        return "real"
    if np.issubdtype(dtype, np.integer) or dtype == np.bool_:
        return "integer"
    return "other"


def _check_x(f: _Field) -> None:
    a = f.array
    if a.ndim not in (2, 3):
        raise ValueError(f"{f}: must have shape (N, T) or (N, T, C), got {a.shape}")
    if _kind(a.dtype) == "other":
        raise ValueError(f"{f}: must hold real numbers or integers, got dtype {a.dtype}")
    if a.size == 0:
        raise ValueError(f"{f}: is empty (shape {a.shape}); every split needs at least one item of at least one step"
                         f"{' and channel' if a.ndim == 3 else ''}")


def _check_n(f: _Field, x: _Field, what: str) -> None:
    if f.array.ndim != 1:
        raise ValueError(f"{f}: must have shape (N,) ({what}), got {f.array.shape}")
    if f.array.shape[0] != x.array.shape[0]:
        raise ValueError(f"{f}: has {f.array.shape[0]} entries but {x} has {x.array.shape[0]} items; N must agree")


def _labels(f: _Field) -> np.ndarray:
    a = f.array
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{f}: must hold integer class labels, got dtype {a.dtype} (convert with "
                         "y.astype(np.int64) if the values are whole numbers)")
    y = np.asarray(a).astype(np.int64)
    if y.size and y.min() < 0:
        r = int(np.argmax(y < 0))
        raise ValueError(f"{f}: holds label {int(y[r])} at row {r}; labels must be 0..n_classes-1")
    return y


def _lengths(f: _Field, x: _Field) -> np.ndarray:
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


class _Part:
    """One split of the source: x (maybe memory-mapped), the rows of x it uses, labels and lengths in memory."""

    def __init__(self, label: str, x: _Field, rows: np.ndarray | None, y: np.ndarray, y_field: _Field,
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


def _scan(part: _Part, sampler: Sampler | None) -> tuple[np.ndarray, np.ndarray]:
    """Check the real positions of `part` chunk by chunk (finite values); per-channel (min, max); feed `sampler`."""
    a = part.x.array
    C = int(a.shape[2]) if a.ndim == 3 else 1
    real = _kind(a.dtype) == "real"
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


def _first_outside(part: _Part, vocab: np.ndarray) -> tuple[int, int, int, int] | None:
    """(row, step, channel, value) of the first real position of `part` outside 0..vocab[c]-1, or None."""
    for s, block, mask in part.blocks():
        bad = (block < 0) | (block >= vocab[None, None, :])
        if mask is not None:
            bad &= mask[..., None]
        if bad.any():
            i, t, c = (int(v[0]) for v in np.nonzero(bad))
            return part.row(s + i), t, c, int(block[i, t, c])
    return None


def _parse_test_size(test_size: Any, n: int, where: str) -> int:
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
class NumpyArrays(SequenceDataset):
    """Any NumPy arrays (docs/data.md: layouts, checks, the quantiser; decision D9).

    Items are (x, y): x uint8 (or int64 when a channel has more than 256 tokens) of shape (T,) for 2-D inputs or
    (T, C) for 3-D ones, cut to the item's length when lengths are given (variable length: `collate_sequences`
    pads with 0 and returns the lengths); y an int. The shape comes from the files (`static_info` is None).
    `data_state()` is the fitted token mapping, identical for the train and the test split.
    """

    name = "arrays"
    channels = ()  # the files decide: one entry per input channel (bins, or max train token + 1)
    shape_options: ClassVar[tuple[str, ...]] = ("n_classes",)

    def __init__(
        self,
        split: str = "train",
        root: str | os.PathLike | None = None,
        path: str | os.PathLike | None = None,
        n_classes: int | None = None,
        test_size: int | float | None = None,
        split_seed: int = 0,
        bins: int = 256,
        quantiser: str = "quantile",
        max_vocab: int = 4096,
    ):
        super().__init__(split, root)
        if path is None:
            raise ValueError(f"the arrays dataset needs option path=<a folder of .npy files or an .npz file> ({_EXPECTED})")
        self.bins, self.quantiser_kind = check_bins(bins), check_kind(quantiser)
        if isinstance(max_vocab, bool) or int(max_vocab) != max_vocab or max_vocab < 0:
            raise ValueError(f"max_vocab must be an integer >= 0 (0: quantise every input), got {max_vocab!r}")
        self.max_vocab = int(max_vocab)
        if n_classes is not None and (isinstance(n_classes, bool) or int(n_classes) != n_classes or n_classes < 1):
            raise ValueError(f"n_classes must be an integer >= 1, got {n_classes!r}")
        self.given_classes = None if n_classes is None else int(n_classes)
        self.n_classes = self.given_classes
        self.split_seed = int(split_seed)
        self.path = Path(path).expanduser()
        self.layout, fields = open_arrays(self.path)
        self.test_size = test_size
        if self.layout == "split" and test_size is not None:
            raise ValueError(f"{self.path}: has its own train/test split (x_train, x_test); option test_size only "
                             "applies to a single x and y")
        if self.layout == "single" and test_size is None:
            raise ValueError(f"{self.path}: holds x and y only (no x_train/x_test); give option test_size (a fraction "
                             "such as 0.2, or a number of items) to split it")
        self._parts = self._build_parts(fields)
        train = self._parts["train"].x.array
        self.x_dtype = train.dtype
        self.steps = int(train.shape[1])  # T of every row of the files, padding included
        self.n_channels = int(train.shape[2]) if train.ndim == 3 else 1
        self.file_names = list(dict.fromkeys(str(f.where) for f in fields.values()))
        self._check_classes()
        self._fit()
        if self.split == "test":
            self._check_test_values()
        part = self._parts[self.split]
        self._x, self._rows, self._y, self._len = part.x.array, part.rows, part.y, part.lengths
        self._x_path = part.x.npy  # reopened after unpickling (DataLoader workers under spawn)
        self._split_digest = None
        if self.layout == "single":  # which rows are test: saved with the run, so eval cannot see training rows
            rows = np.ascontiguousarray(self._parts["test"].rows, dtype=np.int64)
            self._split_digest = hashlib.sha256(rows.tobytes()).digest()
        del self._parts  # the other split's arrays are not kept

    # ---- reading and checking the files
    def _build_parts(self, f: dict[str, _Field]) -> dict[str, _Part]:
        if self.layout == "split":
            for s in ("train", "test"):
                _check_x(f[f"x_{s}"])
                _check_n(f[f"y_{s}"], f[f"x_{s}"], "one label per item")
                if f"lengths_{s}" in f:
                    _check_n(f[f"lengths_{s}"], f[f"x_{s}"], "one length per item")
            xtr, xte = f["x_train"], f["x_test"]
            if xte.array.shape[1] != xtr.array.shape[1]:
                raise ValueError(f"{xte}: has {xte.array.shape[1]} steps per item but {xtr} has {xtr.array.shape[1]}; "
                                 "T must agree between train and test")
            ctr = xtr.array.shape[2] if xtr.array.ndim == 3 else None
            cte = xte.array.shape[2] if xte.array.ndim == 3 else None
            if ctr != cte:
                show = lambda c: "no channel axis (N, T)" if c is None else f"{c} channels"  # noqa: E731
                raise ValueError(f"{xte}: has {show(cte)} but {xtr} has {show(ctr)}; C must agree between train and test")
            if _kind(xte.array.dtype) != _kind(xtr.array.dtype):
                raise ValueError(f"{xte}: holds {_kind(xte.array.dtype)} values ({xte.array.dtype}) but {xtr} holds "
                                 f"{_kind(xtr.array.dtype)} values ({xtr.array.dtype}); both splits need the same kind")
            parts = {}
            for s in ("train", "test"):
                x = f[f"x_{s}"]
                ln = _lengths(f[f"lengths_{s}"], x) if f"lengths_{s}" in f else None
                parts[s] = _Part(s, x, None, _labels(f[f"y_{s}"]), f[f"y_{s}"], ln)
            return parts
        x = f["x"]
        _check_x(x)
        _check_n(f["y"], x, "one label per item")
        if "lengths" in f:
            _check_n(f["lengths"], x, "one length per item")
        y = _labels(f["y"])
        ln = _lengths(f["lengths"], x) if "lengths" in f else None
        n = int(x.array.shape[0])
        n_test = _parse_test_size(self.test_size, n, str(x.where))
        order = np.random.default_rng([self.split_seed, _SPLIT_SALT]).permutation(n)
        rows = {"test": np.sort(order[:n_test]), "train": np.sort(order[n_test:])}
        return {s: _Part(s, x, r, y[r], f["y"], None if ln is None else ln[r]) for s, r in rows.items()}

    def _check_classes(self) -> None:
        train, test = self._parts["train"], self._parts["test"]
        for part in (train, test):
            if self.given_classes is not None and part.y.size and part.y.max() >= self.given_classes:
                i = int(np.argmax(part.y >= self.given_classes))
                raise ValueError(f"{part.y_field}: holds label {int(part.y[i])} at row {part.row(i)}, outside "
                                 f"0..{self.given_classes - 1} (n_classes={self.given_classes})")
        if self.given_classes is None:
            top = int(train.y.max())
            if test.y.max() > top:
                i = int(np.argmax(test.y > top))
                raise ValueError(
                    f"{test.y_field}: holds label {int(test.y[i])} at row {test.row(i)}{self._which(test)}, but the "
                    f"training labels are 0..{top} (n_classes = largest training label + 1 = {top + 1}); give option "
                    "n_classes if the training split lacks some classes")
            self.n_classes = top + 1

    def _which(self, part: _Part) -> str:
        return f" (the {part.label} part drawn with split_seed={self.split_seed})" if self.layout == "single" else ""

    def _fit(self) -> None:
        """Scan the training split (finite values, range) and fit the token mapping on it alone (decision D9)."""
        train = self._parts["train"]
        C = self.n_channels
        sampler = Sampler(train.total, C, MAX_FIT_VALUES)
        lo, hi = _scan(train, sampler)
        self.train_range = (lo, hi)
        if _kind(self.x_dtype) == "integer" and lo.min() >= 0 and hi.max() < self.max_vocab:
            self.quantiser: Quantiser | None = None
            self.vocab = (hi.astype(np.int64) + 1).astype(np.int64)
        else:
            self.quantiser = Quantiser.fit(self.quantiser_kind, sampler.values(), self.bins)
            self.vocab = self.quantiser.vocab
        self._dtype = token_dtype(int(self.vocab.max()))

    def _check_test_values(self) -> None:
        test = self._parts["test"]
        _scan(test, None)
        if self.quantiser is None:
            bad = _first_outside(test, self.vocab)
            if bad is not None:
                r, t, c, v = bad
                raise ValueError(
                    f"{test.x}: holds token {v} at row {r}, step {t}, channel {c}{self._which(test)}, but channel {c} "
                    f"of the training split has tokens 0..{int(self.vocab[c]) - 1}; integer inputs used as tokens need "
                    "every test value within the training vocabulary (max_vocab=0 quantises them instead)")

    # ---- shape
    @classmethod
    def shape(cls, *, n_classes: int | None = None, **_: Any) -> Shape:
        return Shape(None if n_classes is None else int(n_classes), (), None, False)

    def _shape_args(self) -> dict[str, Any]:
        return {"n_classes": self.given_classes}

    def _measure(self) -> dict:
        seq_len = self.steps if self._len is None else int(self._len.max())
        return {"n_classes": self.n_classes, "channels": tuple(int(v) for v in self.vocab), "seq_len": seq_len,
                "variable_length": self._len is not None}

    def data_state(self) -> dict[str, torch.Tensor]:
        """The token mapping fitted on the training split (and, for the x/y layout, which rows are test)."""
        out: dict[str, torch.Tensor] = {"vocab": torch.from_numpy(self.vocab.astype(np.int64).copy())}
        if self.quantiser is not None:
            out["quantiser_edges"] = torch.from_numpy(self.quantiser.edges.copy())
        if self._split_digest is not None:
            out["split_digest"] = torch.tensor(list(self._split_digest), dtype=torch.uint8)
        return out

    # ---- items
    def __len__(self) -> int:
        return int(self._y.shape[0])

    def lengths(self) -> np.ndarray:
        """The real length of every item of this split (T when the files give no lengths)."""
        return self._len.copy() if self._len is not None else np.full(len(self), self.steps, dtype=np.int64)

    def tokens(self, values: np.ndarray) -> np.ndarray:
        """Raw values (T,) or (T, C) as read from the files -> tokens of the same shape."""
        if self.quantiser is None:
            return values.astype(self._dtype)
        flat = values.reshape(values.shape[0], -1)
        return self.quantiser.transform(flat).reshape(values.shape)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"index {i} out of range for {n} items")
        row = int(i if self._rows is None else self._rows[i])
        end = self.steps if self._len is None else int(self._len[i])
        values = np.asarray(self._x[row, :end])  # reads this row's real positions only
        return torch.from_numpy(np.ascontiguousarray(self.tokens(values))), int(self._y[i])

    # ---- description
    @property
    def location(self) -> Path:
        return self.path

    @property
    def kind(self) -> str:
        """How values become tokens: "quantile", "uniform" or "tokens" (integers used as they are)."""
        return "tokens" if self.quantiser is None else self.quantiser.kind

    def class_counts(self) -> np.ndarray:
        return np.bincount(self._y, minlength=self.n_classes)

    def extra_repr(self) -> str:
        lines = [f"layout: {self.layout}" + (f" (test_size={self.test_size}, split_seed={self.split_seed})"
                                              if self.layout == "single" else ""),
                 f"values: {self.x_dtype}, " + (f"quantised ({self.kind}, {self.bins} bins)" if self.quantiser
                                                  else "used as tokens")]
        return "\n".join(lines)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        if self._x_path is not None and isinstance(self._x, np.memmap):
            state["_x"] = None  # reopened from the file instead of being pickled whole
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self._x is None:
            self._x = np.load(self._x_path, mmap_mode="r", allow_pickle=False)
