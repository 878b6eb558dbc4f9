"""A delay after every sequence: K steps appended after its last real step, so its label lies K steps back.

`data.options.delay=K` works on every token dataset (it is a sequence transform, not a feature of one
dataset). With delay K >= the supervised truncation, the supervised window of a run holds no real step:
whatever the classifier learns must have come through the recurrent state from before the window.

    delay_fill=blank   the blank token 0 (MNIST's background pixel, the padding token of byte data)
    delay_fill=noise   uniform random tokens of each channel's vocabulary, drawn per example from
                       (delay_seed, split, index): the same example gets the same noise every epoch and in
                       every process, and a model cannot pass by freezing its state through blank steps

Real-valued data (arrays with quantiser=none) is refused: it has no token to append.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

FILLS = ("blank", "noise")
OPTIONS: dict[str, Any] = {"delay": 0, "delay_fill": "blank", "delay_seed": 0}  # name -> default
OPTION_TYPES: dict[str, type] = {k: type(v) for k, v in OPTIONS.items()}  # each option's type is its default's
_STREAM = {"train": 0, "test": 1, "predict": 2}


def split_options(options: dict) -> tuple[dict, dict]:
    """(the dataset's own options, the delay options with defaults filled in) of `options`."""
    own = {k: v for k, v in options.items() if k not in OPTIONS}
    delay = {**OPTIONS, **{k: v for k, v in options.items() if k in OPTIONS}}
    check(delay)
    return own, delay


def check(delay: dict) -> None:
    """Refuse a delay that is not a count >= 0, an unknown fill, or a seed that is not an integer."""
    k, fill, seed = delay["delay"], delay["delay_fill"], delay["delay_seed"]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"data.options.delay={k!r}: give the number of steps to append, an integer >= 0")
    if fill not in FILLS:
        raise ValueError(f"data.options.delay_fill={fill!r}: choose one of {', '.join(FILLS)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"data.options.delay_seed={seed!r}: give an integer >= 0")


def fill(k: int, channels: tuple[int, ...], how: str, seed: int, split: str, index: int) -> np.ndarray:
    """The K steps appended to item `index` of `split`: int64 (K, C), blank (0) or uniform tokens per channel."""
    if how == "blank":
        return np.zeros((k, len(channels)), dtype=np.int64)
    rng = np.random.default_rng([int(seed), _STREAM[split], int(index)])
    return rng.integers(0, np.asarray(channels, dtype=np.int64), size=(k, len(channels)), dtype=np.int64)


def append(x: torch.Tensor, steps: np.ndarray) -> torch.Tensor:
    """Item x (T,) or (T, C) followed by `steps` (K, C), in x's dtype."""
    tail = torch.from_numpy(steps).to(x.dtype)
    return torch.cat([x, tail[:, 0] if x.ndim == 1 else tail])


class Delayed(torch.utils.data.Dataset):
    """Every item of `ds` followed by `k` blank or noise steps; everything else is `ds`'s own.

    `info.seq_len` grows by k; lengths (through `collate_sequences`) count the appended steps as real, which
    is the point: the sequence ends k steps after its last real step.
    """

    def __init__(self, ds, k: int, how: str = "blank", seed: int = 0):
        check({"delay": k, "delay_fill": how, "delay_seed": seed})
        channels = tuple(ds.info.channels)
        if 0 in channels:
            raise ValueError(f"data.options.delay works on token data; dataset {ds.info.name!r} has real-valued "
                             "channels (quantiser=none), which have no token to append")
        self.ds, self.k, self.how, self.seed = ds, int(k), how, int(seed)
        self.info = dataclasses.replace(ds.info, seq_len=int(ds.info.seq_len) + self.k)
        self._channels = channels

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        x, y = self.ds[i]
        return append(x, fill(self.k, self._channels, self.how, self.seed, self.ds.split, i)), y

    def __getattr__(self, name: str):
        if name == "ds":  # not yet set (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.ds, name)

    def __repr__(self) -> str:
        return f"{self.ds!r}\n    delay: {self.k} {self.how} steps appended (seed {self.seed})"
