"""Synthetic long-range probes (decision D8; docs/data.md): copy-memory and the adding problem."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import torch

from .. import sequences
from ..preparation import InputPreparation
from .base import SequenceDataset, Shape


class _Probe(SequenceDataset):
    """Synthetic items generated on the fly from (seed, split, index): memory does not grow with size."""

    default_sizes = {"train": 10_000, "test": 1_000}
    shape_options: ClassVar[tuple[str, ...]] = ("length",)  # seq_len = length
    cli_flags: ClassVar[dict[str, str]] = {
        "length": "sequence length",
        "size": "number of items",
        "seed": "generator seed",
    }

    def __init__(self, split: str = "train", root: str | os.PathLike | None = None, length: int = 1000, size: int | None = None, seed: int = 0):
        super().__init__(split, root)
        self.length, self.seed = int(length), int(seed)
        self.size = self.default_sizes[split] if size is None else int(size)
        if self.length < 2 or self.size < 1:
            raise ValueError(f"{self.name}: need length >= 2 and size >= 1, got length={length}, size={size}")

    @classmethod
    def shape(cls, *, length: int, **_: Any) -> Shape:
        return super().shape()._replace(seq_len=int(length))

    @classmethod
    def preparation(cls, options: dict[str, Any], state: dict, channels: tuple[int, ...]) -> InputPreparation:
        """Integer tokens, read as they are."""
        return InputPreparation(cls.name, "tokens", channels)

    def __len__(self) -> int:
        return self.size

    def _check_index(self, i: int) -> int:
        if i < 0:
            i += self.size
        if not 0 <= i < self.size:
            raise IndexError(f"index {i} out of range for {self.size} items")
        return i

    @property
    def location(self) -> Path:
        return Path("(generated on the fly)")

    def extra_repr(self) -> str:
        return f"seed: {self.seed}"


class CopyMemory(_Probe):
    """Copy-memory, classification variant: remember the first of `k` symbols over `length` steps (decision D8).

    Shape: k classes, one channel of k + 1 tokens (0 = blank), `length` steps.
    """

    name = "copy"
    shape_options = ("length", "k")

    def __init__(self, split: str = "train", root=None, length: int = 1000, size: int | None = None, seed: int = 0, k: int = 8, noise: float = 0.0):
        super().__init__(split, root, length, size, seed)
        self.k, self.noise = int(k), float(noise)
        if not 1 <= self.k <= 255 or not 0.0 <= self.noise <= 1.0:
            raise ValueError(f"copy: need 1 <= k <= 255 and 0 <= noise <= 1, got k={k}, noise={noise}")

    @classmethod
    def shape(cls, *, length: int, k: int, **_: Any) -> Shape:
        return Shape(n_classes=int(k), channels=(int(k) + 1,), seq_len=int(length))

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x, y = sequences.copy_item(self.seed, self.split, self._check_index(i), self.length, self.k, self.noise)
        return torch.from_numpy(x), y


class Adding(_Probe):
    """Adding problem, discrete variant: sum the two marked digits (19 classes; a digit, a marker; decision D8)."""

    name = "adding"
    n_classes, channels = 19, (10, 2)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x, y = sequences.adding_item(self.seed, self.split, self._check_index(i), self.length)
        return torch.from_numpy(x), y
