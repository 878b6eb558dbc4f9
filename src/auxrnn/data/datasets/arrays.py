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
tokens directly, with vocabulary max + 1 of the training split per channel. With ``quantiser="none"`` every input
stays real: standardised per channel by a `Standardiser` fitted on the training split only (decision D10), items
float32. Either mapping is refitted on the training items a run keeps after its validation carve-out
(`fit_inputs`), on both splits alike.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from ..preparation import STANDARDISE, InputPreparation
from ..quantize import MAX_FIT_VALUES, QUANTISERS, Quantiser, Sampler, check_bins, token_dtype
from ..standardize import Moments, Standardiser
from ..array_files import (EXPECTED, SPLIT_SALT, Field, Part, check_n, check_x, first_outside,
                           kind_of, open_arrays, parse_test_size, read_labels, read_lengths, scan)
from .base import SequenceDataset, Shape

MAPPINGS = (*QUANTISERS, "none")  # option quantiser: how values are mapped ("none": standardised reals)


def mapping_state(quantiser: Quantiser | None, standardiser: Standardiser | None, vocab: np.ndarray) -> dict:
    """The value mapping as numpy arrays: what `data_state()` saves and `NumpyArrays.preparation` reads back."""
    out = {"vocab": vocab.astype(np.int64)}
    if quantiser is not None:
        out["quantiser_edges"] = quantiser.edges
    if standardiser is not None:
        out["standardise_mean"] = standardiser.mean
        out["standardise_std"] = standardiser.std
    return out


MAX_INFERRED_CLASSES = 1 << 20  # more classes than this are taken only when n_classes names them


class NumpyArrays(SequenceDataset):
    """Any NumPy arrays (docs/data.md: layouts, checks, the quantiser; decision D9).

    Items are (x, y): x uint8 (or int64 when a channel has more than 256 tokens; float32 standardised values
    with quantiser="none") of shape (T,) for 2-D inputs or (T, C) for 3-D ones, cut to the item's length when
    lengths are given (variable length: `collate_sequences` pads with 0 and returns the lengths); y an int. The
    shape comes from the files (`static_info` is None); a real-valued channel counts 0 tokens in `info.channels`.
    `data_state()` is the fitted mapping, identical for the train and the test split.
    """

    name = "arrays"
    channels = ()  # the files decide: one entry per input channel (bins, or max train token + 1)
    shape_options: ClassVar[tuple[str, ...]] = ("n_classes",)
    fits_inputs = True
    cli_flags: ClassVar[dict[str, str]] = {
        "path": "a folder of .npy files or an .npz file (docs/data.md)",
        "n_classes": "number of classes (default: inferred)",
        "test_size": "test part of a single x/y, a fraction (0.2) or a count (100)",
        "split_seed": "seed of that split (default 0; never the training seed)",
        "bins": "tokens per channel of real inputs (default 256)",
        "quantiser": "quantile (equal-frequency, default), uniform, or none (real values, standardised)",
        "max_vocab": "integers in 0..N-1 are used as tokens (default 4096; 0 quantises)",
    }

    def __init__(
        self,
        split: str = "train",
        root: str | os.PathLike | None = None,
        path: str | os.PathLike | None = None,
        n_classes: int | None = None,
        test_size: int | float | None = None,
        split_seed: int = 0,
        bins: int = 256,  # decision D9 (the pixel vocabulary of M13)
        quantiser: str = "quantile",  # decision D9: equal-frequency bins fitted on the training split; "none": D10
        max_vocab: int = 4096,  # decision D9: integer inputs below it are tokens as they are
    ):
        super().__init__(split, root)
        if path is None:
            raise ValueError(f"the arrays dataset needs option path=<a folder of .npy files or an .npz file> ({EXPECTED})")
        self.bins = check_bins(bins)
        if quantiser not in MAPPINGS:
            raise ValueError(f"unknown quantiser {quantiser!r}; valid choices: {', '.join(MAPPINGS)}")
        self.quantiser_kind = quantiser
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
        self._train = self._parts["train"]  # kept: `fit_inputs` refits on some of its items
        self._fit(self._train)
        if self.split == "test":
            self._check_test_values()
        part = self._parts[self.split]
        self._x, self._rows, self._y, self._len = part.x.array, part.rows, part.y, part.lengths
        self._x_path = part.x.npy  # reopened after unpickling (DataLoader workers under spawn)
        self._split_digest = None
        if self.layout == "single":  # which rows are test: saved with the run, so eval cannot see training rows
            rows = np.ascontiguousarray(self._parts["test"].rows, dtype=np.int64)
            self._split_digest = hashlib.sha256(rows.tobytes()).digest()
        self._parts = {"test": self._parts["test"]} if self.split == "test" else {}  # the test part: for refits

    # ---- reading and checking the files
    def _build_parts(self, f: dict[str, Field]) -> dict[str, Part]:
        if self.layout == "split":
            for s in ("train", "test"):
                check_x(f[f"x_{s}"])
                check_n(f[f"y_{s}"], f[f"x_{s}"], "one label per item")
                if f"lengths_{s}" in f:
                    check_n(f[f"lengths_{s}"], f[f"x_{s}"], "one length per item")
            xtr, xte = f["x_train"], f["x_test"]
            if xte.array.shape[1] != xtr.array.shape[1]:
                raise ValueError(f"{xte}: has {xte.array.shape[1]} steps per item but {xtr} has {xtr.array.shape[1]}; "
                                 "T must agree between train and test")
            ctr = xtr.array.shape[2] if xtr.array.ndim == 3 else None
            cte = xte.array.shape[2] if xte.array.ndim == 3 else None
            if ctr != cte:
                show = lambda c: "no channel axis (N, T)" if c is None else f"{c} channels"  # noqa: E731
                raise ValueError(f"{xte}: has {show(cte)} but {xtr} has {show(ctr)}; C must agree between train and test")
            if kind_of(xte.array.dtype) != kind_of(xtr.array.dtype):
                raise ValueError(f"{xte}: holds {kind_of(xte.array.dtype)} values ({xte.array.dtype}) but {xtr} holds "
                                 f"{kind_of(xtr.array.dtype)} values ({xtr.array.dtype}); both splits need the same kind")
            parts = {}
            for s in ("train", "test"):
                x = f[f"x_{s}"]
                ln = read_lengths(f[f"lengths_{s}"], x) if f"lengths_{s}" in f else None
                parts[s] = Part(s, x, None, read_labels(f[f"y_{s}"]), f[f"y_{s}"], ln)
            return parts
        x = f["x"]
        check_x(x)
        check_n(f["y"], x, "one label per item")
        if "lengths" in f:
            check_n(f["lengths"], x, "one length per item")
        y = read_labels(f["y"])
        ln = read_lengths(f["lengths"], x) if "lengths" in f else None
        n = int(x.array.shape[0])
        n_test = parse_test_size(self.test_size, n, str(x.where))
        order = np.random.default_rng([self.split_seed, SPLIT_SALT]).permutation(n)
        rows = {"test": np.sort(order[:n_test]), "train": np.sort(order[n_test:])}
        return {s: Part(s, x, r, y[r], f["y"], None if ln is None else ln[r]) for s, r in rows.items()}

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
            if top >= MAX_INFERRED_CLASSES:  # a corrupt label would otherwise size the classifier (2^40 outputs)
                i = int(np.argmax(train.y == top))
                raise ValueError(
                    f"{train.y_field}: holds label {top} at row {train.row(i)}{self._which(train)}, which would make "
                    f"{top + 1} classes; labels are 0..K-1 class indices (a damaged file?). Give option n_classes "
                    f"to use more than {MAX_INFERRED_CLASSES} classes")
            self.n_classes = top + 1

    def _which(self, part: Part) -> str:
        return f" (the {part.label} part drawn with split_seed={self.split_seed})" if self.layout == "single" else ""

    def _fit(self, train: Part, tokens_allowed: bool = True) -> None:
        """Fit the value mapping (tokens, quantiser or standardiser) on the items of `train` alone (D9, D10).

        Whether integers are used as tokens is decided once, on the whole training split (`tokens_allowed`
        False on a refit keeps a quantiser a quantiser, whatever values the kept items happen to hold).
        """
        C = self.n_channels
        self.quantiser: Quantiser | None = None
        self.standardiser: Standardiser | None = None
        if self.quantiser_kind == "none":
            moments = Moments(C)
            self.train_range = scan(train, moments)
            self.standardiser = moments.standardiser()
            self.vocab = np.zeros(C, dtype=np.int64)  # no tokens: real values
            return
        sampler = Sampler(train.total, C, MAX_FIT_VALUES)
        lo, hi = scan(train, sampler)
        self.train_range = (lo, hi)
        if tokens_allowed and kind_of(self.x_dtype) == "integer" and lo.min() >= 0 and hi.max() < self.max_vocab:
            self.vocab = (hi.astype(np.int64) + 1).astype(np.int64)
        else:
            self.quantiser = Quantiser.fit(self.quantiser_kind, sampler.values(), self.bins)
            self.vocab = self.quantiser.vocab
        self._dtype = token_dtype(int(self.vocab.max()))

    @property
    def train_items(self) -> int:
        """Items of the training split (what `fit_inputs` indexes), whichever split this is."""
        return len(self._train)

    def fit_inputs(self, keep: np.ndarray) -> None:
        """Refit the value mapping on items `keep` (sorted indices into the training split) alone.

        A run calls it on both splits with the training items left after its validation carve-out, so that
        validation values never shape the tokens or the statistics the model is trained and scored with.
        Integers used as tokens keep the vocabulary of the whole training split: validation items are tokens too.
        """
        if self.kind == "tokens":  # integers used as tokens: the vocabulary of every training item (they are all fed)
            return
        keep = np.asarray(keep, dtype=np.int64)
        t = self._train
        if keep.ndim != 1 or keep.size == 0 or keep.min() < 0 or keep.max() >= len(t):
            raise ValueError(f"fit_inputs needs indices into the {len(t)} training items, got {keep.size} of them")
        rows = keep if t.rows is None else t.rows[keep]
        kept = Part(t.label, t.x, rows, t.y[keep], t.y_field, None if t.lengths is None else t.lengths[keep])
        self._fit(kept, tokens_allowed=False)
        if self.split == "test":
            self._check_test_values()

    def _check_test_values(self) -> None:
        test = self._parts["test"]
        scan(test, None)
        if self.quantiser is None and self.standardiser is None:
            bad = first_outside(test, self.vocab)
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

    @classmethod
    def preparation(cls, options: dict[str, Any], state: dict[str, np.ndarray],
                    channels: tuple[int, ...]) -> InputPreparation:
        """The saved mapping (`mapping_state`): standardised, quantised, or integers used as tokens."""
        if "standardise_mean" in state:
            s = Standardiser.from_state(state["standardise_mean"], state["standardise_std"])
            return InputPreparation(cls.name, STANDARDISE, channels, standardiser=s)
        if "quantiser_edges" in state:
            q = Quantiser(options["quantiser"], state["quantiser_edges"].astype(np.float64))
            return InputPreparation(cls.name, q.kind, channels, quantiser=q)
        return InputPreparation(cls.name, "tokens", tuple(int(v) for v in state["vocab"]))

    def _shape_args(self) -> dict[str, Any]:
        return {"n_classes": self.given_classes}

    def _measure(self) -> dict:
        seq_len = self.steps if self._len is None else int(self._len.max())
        return {"n_classes": self.n_classes, "channels": tuple(int(v) for v in self.vocab), "seq_len": seq_len,
                "variable_length": self._len is not None}

    def data_state(self) -> dict[str, torch.Tensor]:
        """The token mapping fitted on the training split (and, for the x/y layout, which rows are test)."""
        out = {k: torch.from_numpy(np.array(v, copy=True)) for k, v in
               mapping_state(self.quantiser, self.standardiser, self.vocab).items()}
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
        """Raw values (T,) or (T, C) as read from the files -> tokens (or standardised float32) of the same shape."""
        flat = values.reshape(values.shape[0], -1)
        if self.standardiser is not None:
            return self.standardiser.transform(flat).reshape(values.shape)
        if self.quantiser is None:
            return values.astype(self._dtype)
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
        """How values are mapped: "quantile", "uniform", "tokens" (integers used as they are) or "standardise"."""
        if self.standardiser is not None:
            return STANDARDISE
        return "tokens" if self.quantiser is None else self.quantiser.kind

    def class_counts(self) -> np.ndarray:
        return np.bincount(self._y, minlength=self.n_classes)

    def extra_repr(self) -> str:
        lines = [f"layout: {self.layout}" + (f" (test_size={self.test_size}, split_seed={self.split_seed})"
                                              if self.layout == "single" else ""),
                 f"values: {self.x_dtype}, " + (f"quantised ({self.kind}, {self.bins} bins)" if self.quantiser
                                                  else "standardised per channel" if self.standardiser
                                                  else "used as tokens")]
        return "\n".join(lines)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        if self._x_path is not None and isinstance(self._x, np.memmap):
            state["_x"] = None  # reopened from the file instead of being pickled whole
        state["_train"], state["_parts"] = None, {}  # refits happen in the main process only
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self._x is None:
            self._x = np.load(self._x_path, mmap_mode="r", allow_pickle=False)
