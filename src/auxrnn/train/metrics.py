"""The run folder's record: metrics.jsonl, TensorBoard event files, summary.json.

Each metrics.jsonl line is one JSON object with a `kind`:

    {"kind": "train", "step", "epoch", "phase", "loss", "sup_loss", "aux_loss", "train_acc", "lr",
     "grad_norm", "examples_per_s", "peak_mem_mib"}
    {"kind": "eval",  "step", "epoch", "phase", "test_acc", "val_acc"?, "eval_seconds"}
    {"kind": "event", "step", "event": "start" | "resume" | "stop" | ..., ...}

Accuracies are percentages. Only rank 0 writes.
"""
from __future__ import annotations

import json
import math
import resource
from pathlib import Path

import torch

METRICS = "metrics.jsonl"
SUMMARY = "summary.json"


def peak_memory_mib(device: torch.device) -> float:
    """CUDA: the allocator's peak; CPU: the process's peak resident set."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def _clean(record: dict) -> dict:
    out = {}
    for k, v in record.items():
        if isinstance(v, torch.Tensor):
            v = v.item()
        if isinstance(v, float) and not math.isfinite(v):
            v = str(v)  # JSON has no nan/inf
        out[k] = v
    return out


class MetricsLog:
    """Append-only JSON lines plus (optionally) TensorBoard scalars.

    keep_until: None for a new run. For a resumed run, the step of the checkpoint it continues from:
    every record after that step (written between the checkpoint and a crash) is dropped from
    metrics.jsonl and purged from the TensorBoard events, so the steps that are trained again appear
    once, as in a run that never stopped. -1 drops everything (a run restarted from step 0).
    """

    def __init__(self, run_dir: Path, tensorboard: bool = True, keep_until: int | None = None):
        self.path = Path(run_dir) / METRICS
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if keep_until is not None and self.path.exists():
            kept = [r for r in read_metrics(run_dir) if int(r.get("step", 0)) <= keep_until]
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
            tmp.replace(self.path)
        self._file = open(self.path, "a", buffering=1)
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            purge = None if keep_until is None else keep_until + 1  # events at steps >= purge are dropped
            self._tb = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"), purge_step=purge)

    def write(self, record: dict) -> None:
        record = _clean(record)
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._tb is not None and record.get("kind") in ("train", "eval"):
            step = int(record["step"])
            prefix = record["kind"]
            for k, v in record.items():
                if k not in ("kind", "step") and isinstance(v, (int, float)) and not isinstance(v, bool):
                    self._tb.add_scalar(f"{prefix}/{k}", v, step)

    def close(self) -> None:
        if self._file.closed:
            return
        self._file.close()
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut short by a kill
                pass
    return out


def write_summary(run_dir: Path, summary: dict) -> None:
    path = Path(run_dir) / SUMMARY
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_clean(summary), indent=1) + "\n")
    tmp.replace(path)


def read_summary(run_dir: Path) -> dict | None:
    path = Path(run_dir) / SUMMARY
    return json.loads(path.read_text()) if path.exists() else None
