"""Real values kept real: a per-channel standardiser fitted on the training items only (numpy, no torch).

    m = Moments(C); m.add(chunk) ...   # (m, C) chunks of training values, padding removed, streamed
    s = m.standardiser()
    z = s.transform(x)               # x (..., C) real -> (..., C) float32, (x - mean) / std per channel

The statistics are float64 over every real position of the training items (after the validation carve-out
when the run has one; decision D10). A channel that never varies in training has std 0; it is divided by 1
instead, so it becomes 0 everywhere (it carries nothing the model could use, and a test value different from
the constant stays finite).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Standardiser:
    """mean (C,) and std (C,) float64 of each channel's training values; std 0 is stored as 1."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def from_state(cls, mean: np.ndarray, std: np.ndarray) -> "Standardiser":
        mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
        if mean.ndim != 1 or mean.shape != std.shape or not (std > 0).all():
            raise ValueError(f"a standardiser needs mean (C,) and std (C,) > 0, got {mean.shape} and {std.shape}")
        return cls(mean, std)

    @property
    def channels(self) -> int:
        return int(self.mean.shape[0])

    def transform(self, x: np.ndarray) -> np.ndarray:
        """x (..., C) real values -> (..., C) float32 standardised values."""
        x = np.asarray(x)
        if x.shape[-1:] != (self.channels,):
            raise ValueError(f"expected values (..., {self.channels}), got shape {x.shape}")
        return ((x.astype(np.float64, copy=False) - self.mean) / self.std).astype(np.float32)


class Moments:
    """Count, mean and sum of squared deviations per channel of values streamed in (m, C) chunks.

    Chunks are merged exactly (Chan et al.'s pairwise update, float64), so a file larger than memory is fitted
    on every value in one pass, and the result does not depend on how the values are chunked beyond rounding.
    """

    def __init__(self, channels: int):
        self.n = 0
        self.mean = np.zeros(int(channels))
        self.m2 = np.zeros(int(channels))

    def add(self, values: np.ndarray) -> None:
        v = np.asarray(values, dtype=np.float64).reshape(-1, self.mean.shape[0])
        k = v.shape[0]
        if k == 0:
            return
        mean_b = v.mean(axis=0)
        m2_b = ((v - mean_b) ** 2).sum(axis=0)
        total = self.n + k
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (k / total)
        self.m2 = self.m2 + m2_b + delta ** 2 * (self.n * k / total)
        self.n = total

    def standardiser(self) -> Standardiser:
        if self.n == 0:
            raise ValueError("a standardiser needs at least one training value per channel")
        std = np.sqrt(self.m2 / self.n)
        return Standardiser(self.mean.copy(), np.where(std > 0, std, 1.0))
