"""How a run uses the CPU: denormal floats flushed to zero while it trains, benchmarks or evaluates.

Why: backpropagating an LSTM through a few hundred steps from a loss on its last state makes the
gradient decay geometrically into the denormal range (below 1.2e-38), where x86 arithmetic is 10-100x
slower. Measured on 2 cores (torch 2.13, oneDNN LSTM, B = 128, H = 128, 300 steps): backward 2.5 s with
denormals, 0.16 s flushed. Flushing changes nothing a float32 sum of normal numbers can see
(docs/decisions.md, T22). GPUs flush by default in cuDNN's kernels, so only the CPU is touched.
"""
from __future__ import annotations

import contextlib
import platform
from functools import lru_cache

import torch


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """The processor's name (/proc/cpuinfo on Linux), else the architecture: results name their machine."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def flushing_denormals() -> bool:
    """Whether this thread's CPU arithmetic flushes denormals now (torch has no getter for the flag)."""
    return float(torch.tensor([1e-40], dtype=torch.float32) * 2.0) == 0.0


@contextlib.contextmanager
def flush_denormals(device: torch.device | str = "cpu"):
    """Flush denormals to zero inside the block when `device` is a CPU; the flag is restored after."""
    if torch.device(device).type != "cpu" or flushing_denormals() or not torch.set_flush_denormal(True):
        yield
        return
    try:
        yield
    finally:
        torch.set_flush_denormal(False)
