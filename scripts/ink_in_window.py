"""How much of each image a truncation window sees: the share of ink in the last K steps of MNIST resized.

Fig. 3 at CPU scale grows T by resizing MNIST to side x side (`data.options.side`, one pixel per step). Its
claim is about the label lying before the supervised window, so this prints, for each side, the share of the
summed pixel values (the ink) of the first N training images that falls in the last K steps, after the same
bilinear resize training uses.

    python scripts/ink_in_window.py [--sides 28,40,56,80,128] [--keep 300] [--images 5000]
"""
from __future__ import annotations

import argparse

import numpy as np


def ink_shares(images: np.ndarray, sides: list[int], keep: int) -> dict[int, float]:
    """uint8 images (N, H, W) -> {side: % of the summed pixel values in the last `keep` steps after the resize}."""
    from auxrnn.data import resize

    shares = {}
    for side in sides:
        seqs = resize.resize_images(images, side).reshape(len(images), -1).astype(np.float64)
        shares[side] = 100.0 * seqs[:, -keep:].sum() / seqs.sum()
    return shares


def main() -> None:
    from auxrnn.data import formats
    from auxrnn.data.datasets import MNIST

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sides", default="28,40,56,80,128")
    p.add_argument("--keep", type=int, default=300)
    p.add_argument("--images", type=int, default=5000)
    a = p.parse_args()
    raw = MNIST("train").raw_folder  # fetched and checksum-verified as training does
    images, _ = formats.read_idx_pair(raw / "train-images-idx3-ubyte", raw / "train-labels-idx1-ubyte")
    images = images[: a.images]
    print(f"share of the ink in the last {a.keep} steps, first {len(images)} MNIST training images, bilinear resize")
    for side, share in ink_shares(images, [int(s) for s in a.sides.split(",")], a.keep).items():
        print(f"  side {side:4d}  T = {side * side:6d}  {share:.2f}%")


if __name__ == "__main__":
    main()
