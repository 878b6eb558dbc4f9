"""Your own network on real-valued sequences, with the paper's auxiliary loss, in a plain PyTorch loop.

MNIST read as a sequence of 28 rows of 28 real values (pixels / 255, standardised per channel with
training statistics): a linear encoder, a 2-layer LSTM, a linear head, and the r-LSTM objective on the
values (ReconstructValues). The files come through the library's MNIST loader (from $AUXRNN_MNIST_DIR
when set, else fetched and checked). At the default size it takes about a minute on 2 CPU cores.

    python examples/own_model.py [--steps 400] [--batch 64] [--test-size 10000] [--root DIR]
"""
from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from auxrnn import AuxModel, ReconstructValues
from auxrnn.data import load_dataset


def mnist_rows(split: str, root: str | None, limit: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 28, 28) float32 pixels / 255 (one image row per step) and (N,) int64 labels."""
    ds = load_dataset("mnist", split, root=root)
    n = len(ds) if limit is None else min(limit, len(ds))
    items = [ds[i] for i in range(n)]
    x = torch.stack([x for x, _ in items]).reshape(n, 28, 28).float() / 255
    return x, torch.tensor([y for _, y in items])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=400, help="training steps")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--test-size", type=int, default=10000, help="test images scored at the end")
    p.add_argument("--root", default=None, help="data folder (default: $AUXRNN_DATA or the user cache)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.manual_seed(args.seed)
    start = time.time()
    x_train, y_train = mnist_rows("train", args.root, None)
    x_test, y_test = mnist_rows("test", args.root, args.test_size)
    mean, std = x_train.mean(dim=(0, 1)), x_train.std(dim=(0, 1)).clamp(min=1e-3)  # per channel, training split
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std

    # The quick start of docs/library.md: your parts, the paper's objective, a plain loop.
    model = AuxModel(
        encoder=nn.Linear(28, 64),                                  # (B, t, 28) -> (B, t, 64)
        core=nn.LSTM(64, 128, num_layers=2, batch_first=True),      # any nn.LSTM / GRU / RNN or (inputs, state) module
        head=nn.Linear(128, 10),                                    # on the output at the last real step
        objectives=[ReconstructValues(n_anchors=2, subseq_len=10, aux_truncate=10, channels=28,
                                      hidden=64, ffn_hidden=64)],
        truncate=14,                                                # supervised BPTT: the last 14 steps
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(args.seed)                    # anchors, fresh every step
    lengths = torch.full((args.batch,), 28)
    for step in range(args.steps):
        idx = torch.randint(0, len(x_train), (args.batch,), generator=g)
        out = model(x_train[idx], lengths, y_train[idx], generator=g)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        if step % 100 == 0:
            print(f"step {step}: loss {out.loss.item():.3f} (main {out.sup_loss.item():.3f}, "
                  f"reconstruction {out.aux_loss.item():.3f})", flush=True)

    correct = 0
    for i in range(0, len(x_test), 1000):
        xb = x_test[i:i + 1000]
        correct += int((model.predict(xb, torch.full((len(xb),), 28)).argmax(-1) == y_test[i:i + 1000]).sum())
    print(f"test accuracy {100 * correct / len(x_test):.2f}% ({len(x_test)} test images, {args.steps} steps, "
          f"{time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
