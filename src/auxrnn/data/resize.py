"""Longer sequences from the same images: every H x W image resized to side x side, one pixel per step.

Fig. 3 of the paper grows T by resizing images (StanfordDogs at sides 40..128). The same resize on MNIST
(`data.options.side=N`, T = N²) gives sequences of any length whose label information is known to spread
over the whole image. The resize is bilinear with antialiasing (PIL's BILINEAR filter, which StanfordDogs'
levels use), rounded to the nearest uint8; a training set is resized once per side into a memory-mapped
cache beside the raw files (``processed/<split>_side<N>_<key>.npy``), so a 16K-step set is neither recomputed
per epoch nor held in memory.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .integrity import atomic_path, fetch_lock

BATCH = 1000  # images resized at a time: bounds the float32 work buffer to BATCH * side² * 4 bytes


def check_side(side) -> int:
    """A side length as an int >= 1, or ValueError naming the option."""
    if isinstance(side, bool) or not isinstance(side, (int, np.integer)) or int(side) < 1:
        raise ValueError(f"data.options.side={side!r}: give the resized images' side in pixels, an integer >= 1")
    return int(side)


def resize_images(images: np.ndarray, side: int) -> np.ndarray:
    """uint8 images (N, H, W) -> uint8 (N, side, side), bilinear with antialiasing, rounded to nearest."""
    if images.ndim != 3:
        raise ValueError(f"expected gray images (N, H, W), got shape {images.shape}")
    side = check_side(side)
    if images.shape[1:] == (side, side):
        return np.ascontiguousarray(images, dtype=np.uint8)
    out = np.empty((images.shape[0], side, side), dtype=np.uint8)
    for i in range(0, images.shape[0], BATCH):
        out[i:i + BATCH] = _resize_batch(images[i:i + BATCH], side)
    return out


def _resize_batch(images: np.ndarray, side: int) -> np.ndarray:
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))[:, None]
    y = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False, antialias=True)
    return y[:, 0].round_().clamp_(0, 255).to(torch.uint8).numpy()


def cached_sequences(images: np.ndarray, side: int, cache: Path, lock_root: Path) -> np.memmap:
    """`images` (N, H, W) resized to side x side as read-only uint8 sequences (N, side²), from `cache`.

    The cache is built once (atomically, under a lock, so parallel runs build it once) and then memory-mapped.
    A cache of the wrong shape (another file, a torn write from an older version) is rebuilt.
    """
    side = check_side(side)
    want = (images.shape[0], side * side)
    if not _usable(cache, want):
        with fetch_lock(lock_root, f"{cache.parent.parent.name}-{cache.stem}"):
            if not _usable(cache, want):
                with atomic_path(cache, suffix=".npy") as tmp:
                    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=want)
                    for i in range(0, want[0], BATCH):
                        out[i:i + BATCH] = _resize_batch(images[i:i + BATCH], side).reshape(-1, want[1])
                    out.flush()
                    del out
    return np.load(cache, mmap_mode="r")


def _usable(cache: Path, want: tuple[int, int]) -> bool:
    if not cache.is_file():
        return False
    try:
        x = np.load(cache, mmap_mode="r")
    except (OSError, ValueError):
        return False
    return x.shape == want and x.dtype == np.uint8
