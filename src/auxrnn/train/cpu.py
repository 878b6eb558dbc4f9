"""How a run uses the CPU: its thread count, and denormal floats flushed to zero.

Threads: PyTorch starts one compute thread per core in every process. Two such processes on one
machine oversubscribe it: their OpenMP/oneDNN threads spin against each other, and a measured step of
the default job took ~20 s instead of 0.3 s. So every auxrnn process takes its share of the usable cores
(`choose_threads`): the cores it may run on, divided by the number of processes the command started
(`reproduce --parallel N`, DDP ranks on one host). An explicit OMP_NUM_THREADS from the user wins.

Denormals: backpropagating an LSTM through a few hundred steps from a loss on its last state makes the
gradient decay geometrically into the denormal range (below 1.2e-38), where x86 arithmetic is 10-100x
slower. Measured on 2 cores (torch 2.13, oneDNN LSTM, B = 128, H = 128, 300 steps): backward 2.5 s with
denormals, 0.16 s flushed. Flushing changes nothing a float32 sum of normal numbers can see
(decision T22). GPUs flush by default in cuDNN's kernels, so only the CPU is touched.
"""
from __future__ import annotations

import contextlib
import os
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


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity), not the machine's total."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def processes_on_this_host() -> int:
    """auxrnn processes that one command started here: the ranks on this host under torchrun, else 1."""
    return max(int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1), 1)


def choose_threads(requested: int = 0, processes: int | None = None) -> tuple[int, str]:
    """(threads, why) for this process.

    requested > 0 is used as given; 0 means automatic: usable_cores() // processes, at least 1. An
    OMP_NUM_THREADS set in the environment wins over both (torchrun sets it too).
    """
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env), "OMP_NUM_THREADS"
    if requested > 0:
        return requested, "set"
    procs = processes if processes is not None else processes_on_this_host()
    cores = usable_cores()
    return max(1, cores // max(procs, 1)), f"automatic: {cores} cores / {procs} process{'es' if procs > 1 else ''}"


def use_threads(requested: int = 0, processes: int | None = None) -> tuple[int, str]:
    """Set torch's compute threads by `choose_threads` and return what was chosen."""
    n, why = choose_threads(requested, processes)
    torch.set_num_threads(n)
    return n, why


def flushing_denormals() -> bool:
    """Whether this thread's CPU arithmetic flushes denormals now (torch has no getter for the flag)."""
    return float(torch.tensor([1e-40], dtype=torch.float32) * 2.0) == 0.0


@contextlib.contextmanager
def flush_denormals(device: torch.device | str = "cpu"):
    """Flush denormals to zero inside the block when `device` is a CPU (decision T22); the flag is restored after."""
    if torch.device(device).type != "cpu" or flushing_denormals() or not torch.set_flush_denormal(True):
        yield
        return
    try:
        yield
    finally:
        torch.set_flush_denormal(False)
