"""Several processes, one run: torchrun environment, rank-0 gating, collectives.

A run is distributed when torchrun (or `python -m torch.distributed.run`) has set RANK and WORLD_SIZE
with WORLD_SIZE > 1. The backend is NCCL on CUDA and gloo on CPU. Rank 0 alone logs and checkpoints;
every rank takes its own slice of each global batch (decision T4) and its own anchor generator (seed + rank,
decision T17). Data is loaded by local rank 0 of each node first (`node_leader_first`), so one process per
node fetches it while the others wait (decision D11).
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_master(self) -> bool:
        return self.rank == 0


def pick_device(pref: str, local_rank: int = 0) -> torch.device:
    """'auto' -> cuda when present; under torchrun each process takes cuda:LOCAL_RANK."""
    if pref == "auto":
        pref = "cuda" if torch.cuda.is_available() else "cpu"
    if pref.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"train.device={pref!r} but CUDA is not available; use train.device=cpu")
        if pref == "cuda":
            pref = f"cuda:{local_rank}"
    return torch.device(pref)


def setup(device_pref: str) -> Dist:
    """Join the process group when launched by torchrun; otherwise a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_pref, local)
    if world <= 1:
        return Dist(0, 1, 0, device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(rank, world, local, device)


def teardown(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce(values: list[float], d: Dist, op=dist.ReduceOp.SUM) -> list[float]:
    """Reduce a few numbers across ranks (identity in a single process)."""
    if not d.enabled:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=d.device)
    dist.all_reduce(t, op=op)
    return t.tolist()


def gather_objects(obj, d: Dist) -> list:
    """Every rank's `obj`, in rank order, on every rank."""
    if not d.enabled:
        return [obj]
    out = [None] * d.world_size
    dist.all_gather_object(out, obj)
    return out


def same_on_every_rank(value, d: Dist, problem: str) -> None:
    """Raise RuntimeError(`problem`, with every rank's value) unless all ranks hold the same `value`."""
    values = gather_objects(value, d)
    if len(set(values)) > 1:
        raise RuntimeError(f"{problem} (by rank: {values})")


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


@contextlib.contextmanager
def node_leader_first(d: Dist):
    """Run the block in local rank 0 of each node first, then in the node's other ranks (decision D11).

    For loading data that may have to be fetched: the leader fetches and verifies (under the data root's
    file lock, which also serialises the leaders of several nodes sharing one root) while the others wait
    at a barrier, then read the files in place. A leader that fails exits, and torchrun stops the rest.
    """
    if d.enabled and d.local_rank != 0:
        barrier(d)
    yield
    if d.enabled and d.local_rank == 0:
        barrier(d)
