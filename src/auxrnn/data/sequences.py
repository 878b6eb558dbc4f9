"""Turning data into token sequences: pixels, permutations, bytes, synthetic long-range probes, batching.

All of it works on whole arrays (no Python loop per pixel or per step) and keeps integer types: a pixel
value v is token v for all 256 values, never rounded through floats (decision D4).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

PAD = 0  # padding token for variable-length batches (DBpedia bytes are 1..256, so 0 is free; decision D7)
BYTE_VOCAB = 257  # 256 byte values shifted by one, plus padding (decision D7)


def image_to_sequence(images: np.ndarray) -> np.ndarray:
    """(N, H, W) -> (N, H*W) or (N, H, W, C) -> (N, H*W, C): row-major pixel order (decision D4), dtype unchanged."""
    if images.ndim == 3:
        return images.reshape(images.shape[0], -1)
    if images.ndim == 4:
        return images.reshape(images.shape[0], -1, images.shape[3])
    raise ValueError(f"expected images of shape (N, H, W) or (N, H, W, C), got {images.shape}")


def cifar_rows_to_rgb(rows: np.ndarray) -> np.ndarray:
    """CIFAR rows (N, 3072) = R, G, B planes (each 32x32 row-major) -> (N, 1024, 3) uint8 (decision D5)."""
    n = rows.shape[0]
    return np.ascontiguousarray(rows.reshape(n, 3, 1024).transpose(0, 2, 1))


def rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
    """Integer luminance (ITU-R BT.601 weights): Y = (299 R + 587 G + 114 B + 500) // 1000, uint8 (decision D5).

    Computed in integer arithmetic from the uint8 values; the weights sum to 1000, so Y stays in 0..255
    and a gray pixel (R = G = B = v) maps to exactly v.
    """
    c = rgb.astype(np.uint32)
    y = (299 * c[..., 0] + 587 * c[..., 1] + 114 * c[..., 2] + 500) // 1000
    return y.astype(np.uint8)


def pixels_to_tokens(x: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> int64 tokens; value v is token v (decision D4)."""
    return x.long()


def bytes_to_tokens(b: bytes | np.ndarray) -> torch.Tensor:
    """Bytes -> int64 tokens 1..256 (byte + 1); 0 is reserved for padding (decision D7)."""
    arr = np.frombuffer(b, dtype=np.uint8) if isinstance(b, (bytes, bytearray)) else np.asarray(b, dtype=np.uint8)
    return torch.from_numpy(arr.astype(np.int64) + 1)


def make_permutation(n: int, seed: int) -> torch.Tensor:
    """The fixed pixel permutation of pMNIST: randperm(n) from its own torch.Generator(seed) (decision D3)."""
    g = torch.Generator(device="cpu")
    g.manual_seed(int(seed))
    return torch.randperm(n, generator=g)


def collate_sequences(items: Sequence[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """[(x (T_i[, C]), y)] -> (x (B, T_max[, C]) padded with 0, lengths (B,) int64, y (B,) int64).

    x is int64 tokens, or float32 when the items are real values (the `arrays` source with quantiser="none").
    """
    if len(items) == 0:
        raise ValueError("collate_sequences needs at least one item")
    xs = [torch.as_tensor(x) for x, _ in items]
    lengths = torch.tensor([x.shape[0] for x in xs], dtype=torch.int64)
    tail = xs[0].shape[1:]
    if any(x.shape[1:] != tail for x in xs):
        raise ValueError(f"items disagree on channels: {sorted({tuple(x.shape[1:]) for x in xs})}")
    t_max = int(lengths.max())
    real = xs[0].is_floating_point()
    if any(x.is_floating_point() != real for x in xs):
        raise ValueError("items mix real values and integer tokens")
    out = torch.full((len(xs), t_max, *tail), PAD, dtype=torch.float32 if real else torch.int64)
    for i, x in enumerate(xs):
        out[i, : x.shape[0]] = x
    y = torch.tensor([int(v) for _, v in items], dtype=torch.int64)
    return out, lengths, y


# ------------------------------------------------------------------------------- long-range probes
_SPLIT_STREAM = {"train": 0, "test": 1}


def _rng(seed: int, split: str, index: int) -> np.random.Generator:
    """An independent generator per (seed, split, index), stable across processes and platforms."""
    return np.random.default_rng([int(seed), _SPLIT_STREAM[split], int(index)])


def copy_item(seed: int, split: str, index: int, length: int, k: int = 8, noise: float = 0.0) -> tuple[np.ndarray, int]:
    """Copy-memory, classification variant (decision D8; docs/data.md).

    Tokens: 0 is the blank, 1..k the symbols. Step 0 holds a symbol s; steps 1..T-1 are blanks, each
    replaced by a uniformly random symbol with probability `noise`. Label: s - 1 (k classes).
    """
    rng = _rng(seed, split, index)
    s = int(rng.integers(1, k + 1))
    x = np.zeros(length, dtype=np.uint8)
    x[0] = s
    if noise > 0 and length > 1:
        mask = rng.random(length - 1) < noise
        x[1:][mask] = rng.integers(1, k + 1, size=int(mask.sum()), dtype=np.uint8)
    return x, s - 1


def adding_item(seed: int, split: str, index: int, length: int) -> tuple[np.ndarray, int]:
    """Adding problem, discrete variant (decision D8; docs/data.md).

    x (T, 2) uint8: channel 0 a uniform digit 0..9, channel 1 a marker 0/1. Exactly two markers, one
    uniformly in [0, T//2) and one in [T//2, T). Label: the sum of the two marked digits (0..18, 19 classes).
    """
    if length < 2:
        raise ValueError(f"adding problem needs length >= 2, got {length}")
    rng = _rng(seed, split, index)
    x = np.zeros((length, 2), dtype=np.uint8)
    x[:, 0] = rng.integers(0, 10, size=length, dtype=np.uint8)
    half = length // 2
    a = int(rng.integers(0, half))
    b = int(rng.integers(half, length))
    x[a, 1] = 1
    x[b, 1] = 1
    return x, int(x[a, 0]) + int(x[b, 0])


class LastSteps(torch.utils.data.Dataset):
    """The last `k` steps of every item of `ds` (the whole item when it is shorter).

    What a model that reads only a final window of k steps can see: trained with full BPTT on these, it
    measures the ceiling of any model whose information comes from that window alone (`data.keep_last`).
    """

    def __init__(self, ds, k: int):
        if k < 1:
            raise ValueError(f"data.keep_last={k}: keep at least one step (0 keeps the whole sequence)")
        self.ds, self.k = ds, int(k)
        self.info = last_steps_info(ds.info, self.k)

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        x, y = self.ds[i]
        return x[-self.k:], y

    def data_state(self) -> dict[str, torch.Tensor]:
        return self.ds.data_state()


def last_steps_info(info, k: int):
    """A DatasetInfo whose sequences are cut to their last k steps."""
    import dataclasses

    return dataclasses.replace(info, seq_len=min(int(k), int(info.seq_len)))
