"""The run folder's record: metrics.jsonl, TensorBoard event files, summary.json.

Each metrics.jsonl line is one JSON object with a `kind`:

    {"kind": "train", "step", "epoch", "phase", "loss", "sup_loss", "aux_loss", "train_acc", "lr",
     "grad_norm", "examples_per_s", "peak_mem_mib"}
    {"kind": "eval",  "step", "epoch", "phase", "test_acc", "val_acc"?, "eval_seconds"}
    {"kind": "event", "step", "event": "start" | "resume" | "stop" | ..., ...}

Accuracies are percentages. Only rank 0 writes. metrics.jsonl is always written; the TensorBoard events
need the `tensorboard` extra and `train.tensorboard=true` (off by default, as the extra is optional); without
the extra that setting logs one warning and the run goes on with metrics.jsonl alone.
"""
from __future__ import annotations

import json
import logging
import math
import resource
import time
from pathlib import Path

import torch

log = logging.getLogger("auxrnn.train")

METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
TENSORBOARD_EXTRA = "pip install 'auxrnn[tensorboard]'"
_warned: list[bool] = []  # the missing-TensorBoard warning is logged once per process


def summary_writer():
    """torch's SummaryWriter class, or None (warned once) when the tensorboard package is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        if not _warned:
            _warned.append(True)
            log.warning("TensorBoard is not installed, so this run writes metrics.jsonl without TensorBoard "
                        "events: %s adds them (train.tensorboard=false silences this)", TENSORBOARD_EXTRA)
        return None
    return SummaryWriter


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
        writer = summary_writer() if tensorboard else None
        if writer is not None:
            purge = None if keep_until is None else keep_until + 1  # events at steps >= purge are dropped
            tb_dir = Path(run_dir) / "tensorboard"
            _after_existing_event_files(tb_dir)
            self._tb = writer(log_dir=str(tb_dir), purge_step=purge)

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


def _after_existing_event_files(tb_dir: Path) -> None:
    """Wait (at most a second) until a new event file sorts after the existing ones.

    TensorBoard reads a folder's event files in name order, and a name starts with the creation time in
    whole seconds; a resumed run's file must come after the crashed run's, or the crashed run's stale
    steps would be read last and win.
    """
    stamps = [int(p.name.split(".")[3]) for p in tb_dir.glob("events.out.tfevents.*")
              if len(p.name.split(".")) > 3 and p.name.split(".")[3].isdigit()]
    deadline = time.monotonic() + 2.0  # a file from the future (clock skew) must not hang the run
    while stamps and int(time.time()) <= max(stamps) and time.monotonic() < deadline:
        time.sleep(0.05)


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


class MetricsWindow:
    """Running sums between two metrics lines, kept on the device so that a step never waits for it."""

    KEYS = ("loss", "sup_loss", "aux_loss", "grad_norm")

    def __init__(self, device: torch.device):
        self.device = device
        self.last_flushed_step = 0
        self.t = time.monotonic()
        self.reset()

    def reset(self) -> None:
        zero = lambda: torch.zeros((), dtype=torch.float64, device=self.device)  # noqa: E731
        self.sums = {k: zero() for k in self.KEYS}
        self.counts = {k: 0 for k in self.KEYS}
        self.correct = zero()
        self.non_finite = torch.zeros((), dtype=torch.bool, device=self.device)
        self.scored = self.examples = 0

    def add(self, out, y: torch.Tensor, norm: torch.Tensor, examples: int) -> None:
        for key, v in (("loss", out.loss), ("sup_loss", out.sup_loss), ("aux_loss", out.aux_loss), ("grad_norm", norm)):
            if v is not None:
                v = v.detach()
                self.sums[key] += v.double()
                self.counts[key] += 1
                if key in ("loss", "grad_norm"):
                    self.non_finite |= ~torch.isfinite(v)
        if out.logits is not None:
            self.correct += (out.logits.argmax(-1) == y).sum().double()
            self.scored += int(y.numel())
        self.examples += examples

    def flush(self, step: int, epoch: float, phase: str, lr: float) -> dict:
        """The metrics record of the interval (this is where the host waits for the device), then reset."""
        now = time.monotonic()
        rec = {"kind": "train", "step": step, "epoch": epoch, "phase": phase, "lr": lr,
               "non_finite": bool(self.non_finite)}
        for k, s in self.sums.items():
            if self.counts[k]:
                rec[k] = float(s) / self.counts[k]
        if self.scored:
            rec["train_acc"] = 100.0 * float(self.correct) / self.scored
        rec["examples_per_s"] = self.examples / max(now - self.t, 1e-9)
        rec["peak_mem_mib"] = peak_memory_mib(self.device)
        self.t, self.last_flushed_step = now, step
        self.reset()
        return rec

    def restart_clock(self, step: int) -> None:
        self.t, self.last_flushed_step = time.monotonic(), step

    def state(self) -> dict:
        """The partial sums, so that a run resumed mid-interval logs exactly what a straight run logs."""
        return {"sums": {k: float(v) for k, v in self.sums.items()}, "counts": dict(self.counts),
                "correct": float(self.correct), "scored": self.scored, "examples": self.examples}

    def load_state(self, state: dict) -> None:
        self.reset()
        for k, v in state["sums"].items():
            self.sums[k] = torch.tensor(v, dtype=torch.float64, device=self.device)
        self.counts = dict(state["counts"])
        self.correct = torch.tensor(state["correct"], dtype=torch.float64, device=self.device)
        self.scored, self.examples = int(state["scored"]), int(state["examples"])
