"""Helpers every test module shares: a tiny run on the copy-memory probe, checkpoints, IDX folders."""
from __future__ import annotations

import gzip
import os
import struct

import torch

from auxrnn.train.cpu import choose_threads

# No curves.png per finished run (a figure costs more than a tiny run): the tests that check the figure set
# AUXRNN_PLOT=1 themselves. Subprocesses inherit it.
os.environ.setdefault("AUXRNN_PLOT", "0")

# One compute thread per test process unless the caller sets OMP_NUM_THREADS (CI runs the tests that compare
# numbers again under 2): the tiny runs here are faster on one thread, and a busy machine cannot slow them by
# oversubscription. The tests of the automatic thread choice remove the variable themselves.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# Float sums differ with the thread count on every CPU, so both sides of a test that compares two runs'
# numbers use this one count. In-process runs take SAME_THREADS, subprocesses same_threads_env().
THREADS = choose_threads(0, processes=1)[0]
SAME_THREADS = f"train.threads={THREADS}"
torch.set_num_threads(THREADS)  # also for the tests that run no `auxrnn train` (gradients, library)


def same_threads_env(**extra: str) -> dict:
    """The environment of a subprocess whose numbers a test compares with an in-process run's."""
    return {**os.environ, "OMP_NUM_THREADS": str(THREADS), **extra}

TINY_MODEL = ["model.subseq_len=10", "model.truncate=10", "model.aux_truncate=10", "model.hidden=16",
              "model.embed_dim=8", "model.aux_hidden=16", "model.ffn_hidden=16"]


def tiny_args(size: int = 32, eval_batch: int | None = 7, *extra: str, log_every: int = 1,
              tensorboard: bool = False) -> list[str]:
    """`auxrnn train` arguments of a run that takes a fraction of a second per step: copy-memory, T = 30."""
    args = ["--preset", "none", "data.name=copy", "data.options.length=30", f"data.options.size={size}",
            "data.batch_size=8"]
    if eval_batch is not None:
        args.append(f"data.eval_batch_size={eval_batch}")
    return [*args, *TINY_MODEL, f"train.tensorboard={str(tensorboard).lower()}", f"train.log_every={log_every}",
            *extra]


def ckpt_of(run) -> dict:
    """The newest checkpoint of a run folder, loaded the way resume loads it (weights only)."""
    return torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)


def write_mnist_idx(folder, prefix: str, images, labels) -> None:
    """An MNIST-style pair `<prefix>-images-idx3-ubyte.gz` / `<prefix>-labels-idx1-ubyte.gz` (uint8 arrays)."""
    with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, *images.shape) + images.tobytes())
    with gzip.open(folder / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
        f.write(struct.pack(">II", 0x801, len(labels)) + labels.tobytes())
