"""Real values to tokens: a per-channel quantiser fitted on the training split only (numpy, no torch).

    q = Quantiser.fit("quantile", [values_of_channel_0, ...], bins=256)   # training values only
    tokens = q.transform(x)          # x (..., C) real -> (..., C) bucket indices in 0..bins-1

Two kinds (decision D9, docs/data.md):

- ``quantile`` (default): equal-frequency bins; the ``bins - 1`` interior edges of channel c are the
  quantiles ``k / bins`` (k = 1 .. bins-1) of that channel's training values;
- ``uniform``: ``bins`` equal-width bins between the 0.5 % and 99.5 % percentiles of the training values;
  values outside that range fall into the first or last bin (clipped).

A value v of channel c becomes ``searchsorted(edges[c], v, side="right")``: bin k holds
``edges[k-1] <= v < edges[k]``. Repeated values (a constant stretch, a signal at rest) can make neighbouring
edges equal; those bins stay empty, the number of tokens stays ``bins`` so the model's vocabulary does not
depend on the data. The edges are float64, so the same training values give the same edges on every machine.

`Sampler` keeps a deterministic random subsample of at most `limit` values per channel (default 1,000,000)
from data streamed in chunks, so a file larger than memory can be fitted in one pass.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

QUANTISERS = ("quantile", "uniform")
MAX_FIT_VALUES = 1_000_000  # values per channel the edges are fitted on; more are subsampled
UNIFORM_RANGE = (0.5, 99.5)  # percentiles bounding the uniform quantiser
MAX_BINS = 65536
_SAMPLE_SEED = 0x0A55A  # the subsample's own seed: never the training seed


def check_bins(bins: int) -> int:
    if isinstance(bins, bool) or int(bins) != bins or not 2 <= int(bins) <= MAX_BINS:
        raise ValueError(f"bins must be an integer in 2..{MAX_BINS}, got {bins!r}")
    return int(bins)


def check_kind(kind: str) -> str:
    if kind not in QUANTISERS:
        raise ValueError(f"unknown quantiser {kind!r}; valid choices: {', '.join(QUANTISERS)}")
    return kind


def token_dtype(vocab: int) -> np.dtype:
    """uint8 when every token fits in a byte, else int64 (the dtypes items carry)."""
    return np.dtype(np.uint8) if int(vocab) <= 256 else np.dtype(np.int64)


class Sampler:
    """A deterministic subsample of at most `limit` values per channel from a stream of (m, C) chunks.

    `total` is the number of values per channel the whole stream will bring (known before reading: the real
    positions, sum of lengths). When it fits under `limit` every value is kept; otherwise each value is kept
    with probability ``limit / total``, drawn from ``default_rng([seed, chunk number])``: the same file read in
    the same chunks keeps the same values, whatever the training seed, the process or the machine.
    """

    def __init__(self, total: int, channels: int, limit: int = MAX_FIT_VALUES, seed: int = _SAMPLE_SEED):
        self.total, self.channels, self.limit, self.seed = int(total), int(channels), int(limit), int(seed)
        self.rate = 1.0 if self.total <= self.limit else self.limit / self.total
        self._parts: list[np.ndarray] = []
        self._chunk = 0

    def add(self, values: np.ndarray) -> None:
        """values: (m, C) real values of the next chunk (padding already removed)."""
        values = np.asarray(values).reshape(-1, self.channels)
        if self.rate < 1.0:
            keep = np.random.default_rng([self.seed, self._chunk]).random(values.shape[0]) < self.rate
            values = values[keep]
        self._chunk += 1
        self._parts.append(np.array(values, dtype=np.float64, copy=True))

    def values(self) -> list[np.ndarray]:
        """One float64 array per channel."""
        allv = np.concatenate(self._parts) if self._parts else np.empty((0, self.channels), dtype=np.float64)
        return [np.ascontiguousarray(allv[:, c]) for c in range(self.channels)]


def quantile_edges(values: np.ndarray, bins: int) -> np.ndarray:
    """The bins-1 interior edges of equal-frequency bins: quantiles k/bins, k = 1..bins-1 (float64)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("cannot fit a quantiser on no values")
    return np.quantile(v, np.arange(1, bins, dtype=np.float64) / bins)


def uniform_edges(values: np.ndarray, bins: int, pct: tuple[float, float] = UNIFORM_RANGE) -> np.ndarray:
    """The bins-1 interior edges of equal-width bins between the percentiles `pct` of `values` (float64)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("cannot fit a quantiser on no values")
    lo, hi = np.percentile(v, pct)
    return lo + (hi - lo) * (np.arange(1, bins, dtype=np.float64) / bins)


@dataclass(frozen=True)
class Quantiser:
    """Per-channel interior edges (C, bins-1) float64; token = bin index in 0..bins-1."""

    kind: str
    edges: np.ndarray

    @classmethod
    def fit(cls, kind: str, values: Sequence[np.ndarray], bins: int = 256) -> "Quantiser":
        """Fit on one array of training values per channel (padding and test data never belong here)."""
        kind, bins = check_kind(kind), check_bins(bins)
        fit = quantile_edges if kind == "quantile" else uniform_edges
        edges = np.stack([fit(v, bins) for v in values]) if len(values) else np.empty((0, bins - 1))
        return cls(kind, np.ascontiguousarray(edges, dtype=np.float64))

    @property
    def bins(self) -> int:
        return int(self.edges.shape[1]) + 1

    @property
    def channels(self) -> int:
        return int(self.edges.shape[0])

    @property
    def vocab(self) -> np.ndarray:
        """Tokens per channel: int64 (C,), all equal to `bins`."""
        return np.full(self.channels, self.bins, dtype=np.int64)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """x (..., C) real values -> tokens (..., C) in 0..bins-1, uint8 when bins <= 256 else int64."""
        x = np.asarray(x)
        if x.shape[-1:] != (self.channels,):
            raise ValueError(f"expected values (..., {self.channels}), got shape {x.shape}")
        out = np.empty(x.shape, dtype=token_dtype(self.bins))
        for c in range(self.channels):
            out[..., c] = np.searchsorted(self.edges[c], x[..., c].astype(np.float64, copy=False), side="right")
        return out

    def summary(self) -> list[tuple[float, float, float]]:
        """Per channel (lowest, median, highest) interior edge, for `auxrnn data info`."""
        return [(float(e[0]), float(np.median(e)), float(e[-1])) for e in self.edges]
