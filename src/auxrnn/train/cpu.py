"""How a run uses the CPU: its thread count, denormal floats flushed to zero, and free heap pages returned.

Threads: PyTorch starts one compute thread per core in every process. Two such processes on one
machine oversubscribe it: their OpenMP/oneDNN threads spin against each other, and a measured step of
the default job took ~20 s instead of 0.3 s. So every auxrnn process takes its share of the usable cores
(`choose_threads`): the cores it may use (its CPU affinity capped by a cgroup CPU quota, so `docker
--cpus 2` on a 64-core host gives 2), divided by the number of processes the command started
(`reproduce --parallel N`, DDP ranks on one host). An explicit OMP_NUM_THREADS from the user wins; the
OMP_NUM_THREADS=1 that torchrun sets by itself does not (`torchrun_default_omp`, decision T30).

Denormals: backpropagating an LSTM through a few hundred steps from a loss on its last state makes the
gradient decay geometrically into the denormal range (below 1.2e-38), where x86 arithmetic is 10-100x
slower. Measured on 2 cores (torch 2.13, oneDNN LSTM, B = 128, H = 128, 300 steps): backward 2.5 s with
denormals, 0.16 s flushed. Flushing changes nothing a float32 sum of normal numbers can see
(decision T22). GPUs flush by default in cuDNN's kernels, so only the CPU is touched.

Free pages: a CPU step allocates tensors of many sizes (catch-up reads and windows vary with the random
anchors; bf16 autocast adds casts), below glibc's mmap threshold, which rises to 32 MiB after the first large
free. They come from one heap whose freed middle glibc keeps: a bf16 r-LSTM at T = 16384 held 4.4 GiB after
250 steps, of which malloc_trim returned 3.5 GiB at once, and a T = 1100 run reached 10 GiB. A run on the CPU
therefore returns them at every log interval (`release_free_memory`): an evaluation's go at the next one.
"""
from __future__ import annotations

import contextlib
import ctypes
import math
import os
import platform
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Mapping

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


CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC = Path("/proc")


@dataclass(frozen=True)
class Cores:
    """The cores a process may use: its CPU affinity, capped by a cgroup CPU quota (in cores; None: none)."""

    affinity: int
    quota: float | None

    @property
    def usable(self) -> int:
        """min(affinity, floor(quota)), at least 1: a partial core is left idle (decision T29)."""
        if self.quota is None:
            return self.affinity
        return max(1, min(self.affinity, math.floor(self.quota)))

    def describe(self) -> str:
        quota = "no cgroup quota" if self.quota is None else f"cgroup quota {self.quota:g}"
        return f"{self.usable} usable core{'s' if self.usable != 1 else ''} (affinity {self.affinity}, {quota})"


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _own_cgroups(proc: Path) -> dict[str, str]:
    """controller -> this process's cgroup path, from <proc>/self/cgroup ("" is the cgroup v2 hierarchy)."""
    out: dict[str, str] = {}
    for line in (_read(proc / "self" / "cgroup") or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(","):
                out[controller] = parts[2]
    return out


def _up_from(base: Path, path: str) -> list[Path]:
    """base/path and each folder above it up to base: a quota on any ancestor limits this process too.
    Just base when base/path does not exist (a container sees its own cgroup mounted as the root)."""
    here = base / path.strip("/")
    if not here.is_dir():
        return [base]
    out = [here]
    while here != base and base in here.parents:
        here = here.parent
        out.append(here)
    return out


def cgroup_quota(cgroup: Path = CGROUP_ROOT, proc: Path = PROC) -> float | None:
    """The tightest CPU quota, in cores, over this process's cgroup and its ancestors; None when unlimited.

    cgroup v2: `cpu.max` holds "max PERIOD" or "QUOTA PERIOD". cgroup v1 (the `cpu` controller's own
    mount): `cpu.cfs_quota_us` (-1: none) over `cpu.cfs_period_us`. Unreadable or malformed files count as
    no limit. `cgroup` and `proc` are the mount points (tests give folders of fake files).
    """
    own = _own_cgroups(proc)
    limits: list[float] = []
    for folder in _up_from(cgroup, own.get("", "/")):  # v2
        fields = (_read(folder / "cpu.max") or "").split()
        if len(fields) == 2 and fields[0] != "max" and fields[0].isdigit() and fields[1].isdigit() and int(fields[1]):
            limits.append(int(fields[0]) / int(fields[1]))
    for mount in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):  # v1
        if (cgroup / mount).is_dir():
            for folder in _up_from(cgroup / mount, own.get("cpu", "/")):
                quota = (_read(folder / "cpu.cfs_quota_us") or "").strip()
                period = (_read(folder / "cpu.cfs_period_us") or "").strip()
                if quota.isdigit() and period.isdigit() and int(quota) > 0 and int(period) > 0:
                    limits.append(int(quota) / int(period))
            break
    return min(limits) if limits else None


def _affinity() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def core_budget(cgroup: Path = CGROUP_ROOT, proc: Path = PROC) -> Cores:
    """This process's CPU affinity and cgroup quota (`docker --cpus 2` on a 64-core host: 64 and 2.0)."""
    return Cores(_affinity(), cgroup_quota(cgroup, proc))


def processes_on_this_host(env: Mapping[str, str] | None = None) -> int:
    """auxrnn processes that one command started here: the ranks on this host under torchrun, else 1."""
    env = os.environ if env is None else env
    return max(int(env.get("LOCAL_WORLD_SIZE", "1") or 1), 1)


def _initial_environ(pid: int, proc: Path) -> dict[str, str] | None:
    """The environment process `pid` was started with (<proc>/PID/environ); None when unreadable."""
    try:
        raw = (proc / str(pid) / "environ").read_bytes()
    except OSError:
        return None
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def torchrun_default_omp(env: Mapping[str, str] | None = None, proc: Path = PROC) -> bool:
    """Whether OMP_NUM_THREADS=1 here is torchrun's default rather than the user's choice.

    torchrun (torch.distributed.run) sets OMP_NUM_THREADS=1 in its own os.environ, which its ranks inherit,
    when the variable is unset and nproc_per_node > 1. The ranks cannot see the difference in their
    environment, but the agent's environment as it was started can: a rank is a child of the agent, and
    /proc/<agent>/environ does not change when the agent assigns os.environ. So: "1", under torchrun
    (TORCHELASTIC_RUN_ID set) with LOCAL_WORLD_SIZE > 1, and absent from the parent's initial environment
    (decision T30).
    Where that cannot be read (no /proc), the value is taken as torchrun's; `train.threads` still sets a
    count by hand.
    """
    env = os.environ if env is None else env
    if env.get("OMP_NUM_THREADS", "").strip() != "1" or "TORCHELASTIC_RUN_ID" not in env:
        return False
    if processes_on_this_host(env) <= 1:
        return False
    parent = _initial_environ(os.getppid(), proc)
    return parent is None or "OMP_NUM_THREADS" not in parent


def choose_threads(requested: int = 0, processes: int | None = None, *, env: Mapping[str, str] | None = None,
                   cgroup: Path = CGROUP_ROOT, proc: Path = PROC) -> tuple[int, str]:
    """(threads, why) for this process.

    A user's OMP_NUM_THREADS wins (torchrun's default of 1 is not the user's: `torchrun_default_omp`);
    then requested > 0 (train.threads); else automatic: the usable cores (`core_budget`) // processes
    (default: the ranks on this host), at least 1. `why` says how the count was reached; it is logged at
    the start of a run and kept in its summary as `threads_from`.
    """
    env = os.environ if env is None else env
    omp = env.get("OMP_NUM_THREADS", "").strip()
    from_torchrun = torchrun_default_omp(env, proc)
    if omp.isdigit() and int(omp) > 0 and not from_torchrun:
        return int(omp), "OMP_NUM_THREADS"
    if requested > 0:
        return requested, "set"
    cores = core_budget(cgroup, proc)
    if processes is None:
        procs = processes_on_this_host(env)
        who = f"{procs} rank{'s' if procs > 1 else ''} on this host" if "TORCHELASTIC_RUN_ID" in env else \
            f"{procs} process{'es' if procs > 1 else ''}"
    else:
        procs = max(processes, 1)
        who = f"{procs} process{'es' if procs > 1 else ''}"
    why = f"automatic: {cores.describe()} / {who}"
    if from_torchrun:
        why += " (torchrun's default OMP_NUM_THREADS=1 replaced)"
    return max(1, cores.usable // procs), why


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


@lru_cache(maxsize=1)
def _malloc_trim():
    """glibc's malloc_trim, or None where the C library has none (macOS, musl)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_free_memory(device: torch.device | str = "cpu") -> bool:
    """Give the C heap's free pages back to the system when `device` is a CPU; whether any were given back.

    Changes no value: only pages no live tensor uses are returned, and the next allocation maps them again.
    """
    trim = _malloc_trim()
    if torch.device(device).type != "cpu" or trim is None:
        return False
    return bool(trim(0))
