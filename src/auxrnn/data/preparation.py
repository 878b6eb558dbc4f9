"""Raw inputs -> what a trained model reads, without any dataset object (numpy in, numpy out).

A run saves its dataset's `data_state()` (a permutation, a quantiser, a standardiser, a vocabulary) in every
checkpoint. `InputPreparation.of(name, options, state, channels)` rebuilds from that alone the steps the
dataset applied to its files, so that new raw inputs go through exactly the same ones:

    prep = InputPreparation.of("pmnist", {"perm_seed": 0}, state, channels=(256,))
    x, lengths = prep(images)        # uint8 (N, 28, 28) -> tokens int64 (N, 784, 1), lengths (N,)

Each dataset class declares its steps (its classmethod `preparation`, found through ./registry.py); `of`
adds the delay every dataset takes (./delay.py). Raw inputs by `kind`:

    images  integer pixels 0..255, (N, H, W) or (N, H, W, 3) images or (N, T) / (N, T, C) sequences;
            resized where the run resized them (gray images, `side`), flattened row-major (decision D4), RGB
            to gray where the run was gray (decision D5), then permuted when the run was (decisions D3, T10)
    bytes   a list of N str (or bytes) documents -> byte tokens 1..256, cut to max_len (decision D7)
    tokens  integer tokens (N, T) or (N, T, C)
    quantile, uniform, standardise
            (N, T) or (N, T, C) numbers, mapped as the `arrays` run mapped them (decisions D9, D10): quantised,
            or standardised (float32 out)

A C-channel model (C > 1) takes (N, T, C) only: a 2-D array is refused rather than guessed at (a CSV row of
T * C values is reshaped by its reader, `auxrnn.data.prediction_files`). T may differ from the run's T
(the model reads any length) except where a permutation fixes it.

Every refusal is a ValueError saying what was expected.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from . import delay, resize, sequences
from .quantize import Quantiser
from .registry import DATASETS
from .standardize import Standardiser

STANDARDISE = "standardise"


def _numpy(v: Any) -> np.ndarray:
    """A tensor or array of a saved data state as a numpy array (no torch import needed here)."""
    return v.numpy() if hasattr(v, "numpy") else np.asarray(v)


@dataclass(frozen=True)
class InputPreparation:
    """The input steps of one trained run; call it on raw inputs (see the module docstring)."""

    source: str                            # the dataset name the run trained on
    kind: str                              # "images" | "bytes" | "tokens" | "quantile" | "uniform" | "standardise"
    channels: tuple[int, ...]              # per input channel: tokens it takes (0 for real values)
    permutation: np.ndarray | None = None  # int64 (T,): step t of the model reads raw step permutation[t]
    quantiser: Quantiser | None = None
    standardiser: Standardiser | None = None
    max_len: int | None = None             # byte documents: the cut (decision D7)
    gray: bool = False                     # RGB images become one gray channel (cifar10 grayscale)
    side: int | None = None                # gray images resized to side x side first (mnist/pmnist/idx side=N)
    delay: tuple[int, str, int] = (0, "blank", 0)  # (K, fill, seed): K steps appended after the last real step

    @classmethod
    def of(cls, name: str, options: dict, state: dict, channels: Sequence[int]) -> "InputPreparation":
        """The steps of dataset `name` with `options`, from its saved `state` and the model's `channels`."""
        dataset = DATASETS.get(name.lower())
        if dataset is None:
            raise ValueError(f"no input preparation is known for dataset {name!r}")
        own, d = delay.split_options(options)
        prep = dataset.preparation({**dataset.option_defaults(), **own}, {k: _numpy(v) for k, v in state.items()},
                                   tuple(int(c) for c in channels))
        return dataclasses.replace(prep, delay=(int(d["delay"]), str(d["delay_fill"]), int(d["delay_seed"])))

    @classmethod
    def images(cls, source: str, state: dict, channels: tuple[int, ...], *, gray: bool = False,
               side: int | None = None) -> "InputPreparation":
        """Integer pixels, permuted by the saved `state["permutation"]` (int64 (T,)) when the run was."""
        perm = state.get("permutation")
        return cls(source, "images", channels, None if perm is None else perm.astype(np.int64), gray=gray,
                   side=side)

    @property
    def real(self) -> bool:
        """Whether the model reads real values (float32) rather than integer tokens."""
        return self.kind == STANDARDISE

    def __call__(self, x: Any, lengths: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Raw inputs -> (inputs (N, T, C): int64 tokens or float32 values, lengths int64 (N,) in 1..T).

        `lengths` (N,) marks where each item ends (positions at or after it are padding, never read);
        None: every item is T steps long. Byte documents carry their own lengths.
        """
        if self.kind == "bytes":
            if lengths is not None:
                raise ValueError("byte documents carry their own lengths; give no lengths")
            return self._delayed(*self._bytes(x))
        return self._delayed(*self._prepare(x, lengths))

    def _prepare(self, x: Any, lengths: Any) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(x)
        if x.dtype == object or np.iscomplexobj(x) or not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
            raise ValueError(f"inputs must be integers or real numbers, got dtype {x.dtype}")
        if self.kind == "images":
            x = self._images(x)
        x = self._sequences(x)
        N, T, C = x.shape
        lengths = self._lengths(lengths, N, T)
        real = np.arange(T)[None, :] < lengths[:, None]  # (N, T) positions that are not padding
        if np.issubdtype(x.dtype, np.floating):
            bad = ~np.isfinite(x) & real[..., None]
            if bad.any():
                i, t, c = (int(v[0]) for v in np.nonzero(bad))
                what = "NaN" if np.isnan(x[i, t, c]) else "inf"
                raise ValueError(f"inputs hold {what} at item {i}, step {t}, channel {c}; every real position must be "
                                 "finite")
        if self.permutation is not None:
            if T != self.permutation.shape[0]:
                raise ValueError(f"inputs have {T} steps, but this model reads its {self.permutation.shape[0]} steps "
                                 "in a fixed permuted order, so every item needs exactly that many")
            x = x[:, self.permutation]
        if self.standardiser is not None:
            return np.where(real[..., None], self.standardiser.transform(x), np.float32(0)), lengths
        if self.quantiser is not None:
            return np.where(real[..., None], self.quantiser.transform(x), 0).astype(np.int64), lengths
        return self._tokens(x, real), lengths

    # ---- steps
    def _images(self, x: np.ndarray) -> np.ndarray:
        C = len(self.channels)
        x = self._pixels(x)
        if self.side is not None and x.ndim == 3 and C == 1:  # gray images resized as the run's were
            x = resize.resize_images(x, self.side)
        if x.ndim == 4 or (x.ndim == 3 and C == 1):  # images (N, H, W[, 3]) -> (N, H*W[, 3]), row-major
            x = sequences.image_to_sequence(x)
        if self.gray and x.ndim == 3 and x.shape[2] == 3:
            x = sequences.rgb_to_gray(x)
        return x

    def _delayed(self, x: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, T, C) inputs with the run's delay steps after each item's last real step: (N, T + K, C)."""
        k, how, seed = self.delay
        if not k:
            return x, lengths
        N, T, C = x.shape
        out = np.zeros((N, T + k, C), dtype=x.dtype)
        for i, n in enumerate(lengths):
            out[i, :n] = x[i, :n]
            out[i, n:n + k] = delay.fill(k, self.channels, how, seed, "predict", i)
        return out, lengths + k

    def _sequences(self, x: np.ndarray) -> np.ndarray:
        C = len(self.channels)
        if x.ndim == 2 and C > 1:  # never reshaped here: (N, T*C) and a single item (T, C) look alike
            raise ValueError(f"inputs of shape {x.shape} have one value per step, but this model reads {C} channels: "
                             f"give (N, T, {C}) (a single item too: x[None])")
        if x.ndim == 2 and x.shape[1] == 1 and x.shape[0] > 1:  # (T, 1): one item with its channel axis, not T items
            raise ValueError(f"inputs of shape {x.shape} would be {x.shape[0]} items of a single step each; a single "
                             f"item of {x.shape[0]} steps is (1, {x.shape[0]}): x.T or x[None, :, 0]")
        if x.ndim == 2:
            x = x[..., None]
        if x.ndim != 3 or 0 in x.shape:
            raise ValueError(f"inputs must be (N, T) or (N, T, C) with N, T, C >= 1"
                             f"{' (or images (N, H, W[, 3]))' if self.kind == 'images' else ''}, got shape {x.shape}")
        if x.shape[2] != C:
            raise ValueError(f"inputs have {x.shape[2]} channel{'s' * (x.shape[2] != 1)} per step, but this model "
                             f"was trained on {C}")
        return x

    @staticmethod
    def _lengths(lengths: Any, N: int, T: int) -> np.ndarray:
        if lengths is None:
            return np.full(N, T, dtype=np.int64)
        n = np.asarray(lengths)
        if n.shape != (N,) or not np.issubdtype(n.dtype, np.integer):
            raise ValueError(f"lengths must be (N,) = ({N},) integers, got {n.dtype} {n.shape}")
        bad = (n < 1) | (n > T)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"lengths[{i}] = {int(n[i])} is outside 1..{T} (the steps of the inputs)")
        return n.astype(np.int64)

    def _pixels(self, x: np.ndarray) -> np.ndarray:
        if not np.issubdtype(x.dtype, np.integer) or (x.size and (x.min() < 0 or x.max() > 255)):
            raise ValueError(f"image inputs must be integer pixels 0..255 (e.g. uint8), got {x.dtype}"
                             + (f" with values {x.min()}..{x.max()}" if np.issubdtype(x.dtype, np.integer) else ""))
        return x.astype(np.uint8)

    def _tokens(self, x: np.ndarray, real: np.ndarray) -> np.ndarray:
        if not (np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_):
            raise ValueError(f"this model reads integer tokens; inputs of dtype {x.dtype} would need a quantiser it "
                             "was not trained with")
        vocab = np.asarray(self.channels)
        bad = ((x < 0) | (x >= vocab)) & real[..., None]
        if bad.any():
            i, t, c = (int(v[0]) for v in np.nonzero(bad))
            raise ValueError(f"inputs hold {int(x[i, t, c])} at item {i}, step {t}, channel {c}, outside the tokens "
                             f"0..{int(vocab[c]) - 1} this model was trained on")
        return np.where(real[..., None], x, 0).astype(np.int64)

    def _bytes(self, docs: Any) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(docs, (str, bytes)) or not hasattr(docs, "__len__") or len(docs) == 0:
            raise ValueError("inputs of a byte-document model are a non-empty list of str or bytes documents")
        rows = []
        for i, d in enumerate(docs):
            if isinstance(d, str):
                d = d.encode("utf-8", errors="surrogateescape")
            if not isinstance(d, (bytes, bytearray)) or len(d) == 0:
                raise ValueError(f"document {i} is empty or not text")
            rows.append(sequences.bytes_to_tokens(d[: self.max_len] if self.max_len else d).numpy())
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        out = np.full((len(rows), int(lengths.max()), 1), sequences.PAD, dtype=np.int64)
        for i, r in enumerate(rows):
            out[i, : len(r), 0] = r
        return out, lengths
