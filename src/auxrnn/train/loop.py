"""The training loop: two phases, evaluation, checkpoints, exact resume, DDP. Plain PyTorch.

    phase 1 "pretrain"  steps [0, P):      loss = aux_loss                         (paper §1.5)
    phase 2 "train"     steps [P, P + N):  loss = sup_loss + aux_weight * aux_loss

One step: draw the rank's slice of the global batch for (epoch, position), set the learning rate for
the step, compute the losses (anchors come from the loop's CPU generator), check that they are finite
on every rank, backpropagate, clip, update. Between steps the loop logs, evaluates, checkpoints, and
looks at the stop flags (SIGINT/SIGTERM, the time budget, `until_step`); a stop always writes a
checkpoint first, so `auxrnn train --resume RUN` carries on exactly.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import logging
import math
import random
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from auxrnn import models
from auxrnn.memory import is_oom
from auxrnn.train import batches, checkpoint, distributed
from auxrnn.train.config import RunConfig, dump_yaml, fit_to_data
from auxrnn.train.cpu import cpu_model, flush_denormals
from auxrnn.train.metrics import MetricsLog, peak_memory_mib, read_summary, write_summary
from auxrnn.train.optim import build_optimizer, lr_at, phase_of

log = logging.getLogger("auxrnn.train")

CONFIG_FILE = "config.yaml"


class NonFiniteLoss(RuntimeError):
    """The loss or the gradient norm became nan/inf; the last good checkpoint is kept."""


@dataclass
class Plan:
    steps_per_epoch: int
    pretrain_steps: int
    total_steps: int

    def epoch(self, step: int) -> float:
        return step / self.steps_per_epoch


def plan_phases(cfg: RunConfig, n_train: int) -> Plan:
    """Phase lengths in steps, from epochs or steps (one epoch = n_train // batch_size steps)."""
    spe = batches.steps_per_epoch(n_train, cfg.data.batch_size)
    t = cfg.train
    pre = t.pretrain_steps or t.pretrain_epochs * spe
    main = t.steps or t.epochs * spe
    return Plan(spe, pre, pre + main)


def param_sha256(model: torch.nn.Module) -> str:
    """sha256 of every parameter and buffer's bytes, in state_dict order (a DDP consistency check)."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _amp(cfg: RunConfig, device: torch.device):
    if cfg.train.amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({cpu_model()}, {torch.get_num_threads()} threads)"


@torch.no_grad()
def evaluate(model: torch.nn.Module, ds, cfg: RunConfig, d: distributed.Dist) -> tuple[int, int]:
    """(correct, count) over every example of `ds`, summed over ranks. count == len(ds) always."""
    was_training = model.training
    model.eval()
    correct = count = 0
    with flush_denormals(d.device):
        for x, lengths, y in batches.eval_batches(ds, cfg.data.eval_batch_size, d.rank, d.world_size, cfg.data.workers):
            with _amp(cfg, d.device):
                logits = model.predict(x.to(d.device, non_blocking=True), lengths)
            correct += int((logits.argmax(-1).cpu() == y).sum())
            count += int(y.numel())
    model.train(was_training)
    correct, count = (int(v) for v in distributed.all_reduce([correct, count], d))
    assert count == len(ds), f"evaluation scored {count} of {len(ds)} examples"
    return correct, count


class StopSignals:
    """SIGINT/SIGTERM set a flag that the loop reads between steps (a second SIGINT interrupts at once)."""

    def __init__(self):
        self.signum = 0
        self._old: dict = {}

    def _handle(self, signum, frame):
        if self.signum and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        log.warning("received %s: stopping after this step with a checkpoint", signal.Signals(signum).name)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)


def _seed_everything(seed: int, gen: torch.Generator) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    gen.manual_seed(seed)


def train(cfg: RunConfig, run_dir: Path, *, resume: bool = False, until_step: int | None = None,
          progress: bool | None = None, on_start=None) -> dict:
    """Train (or resume) one run in `run_dir`; returns its summary (also written to summary.json).

    Args:
        cfg: a validated RunConfig (model.channels / n_classes are filled from the data here).
        run_dir: the run folder: config.yaml, metrics.jsonl, tensorboard/, checkpoints/last.pt, summary.json.
        resume: continue from run_dir/checkpoints/last.pt when it exists.
        until_step: stop (with a checkpoint) once this many global steps are done.
        progress: show a tqdm bar; None = when stderr is a terminal.
        on_start: called on rank 0 as on_start(cfg) once the config is fitted to the data, before training.
    Returns:
        The summary dict; summary["status"] is "finished", "until_step", "time_budget" or "signal".
    Raises:
        NonFiniteLoss when the loss or gradient becomes nan/inf (the last checkpoint is left as it was).
    """
    run_dir = Path(run_dir)
    d = distributed.setup(cfg.train.device)
    try:
        with flush_denormals(d.device):
            return _train(cfg, run_dir, d, resume, until_step, progress, on_start)
    except BaseException as exc:
        if is_oom(exc) and d.is_master:  # out of memory is this run's result (reproduce records it)
            record_oom(run_dir, exc, cfg)
        raise
    finally:
        distributed.teardown(d)


def record_oom(run_dir: Path, exc: BaseException, cfg: RunConfig | None = None) -> dict:
    """Write summary.json with status "oom" (the last checkpoint, if any, is left as it was)."""
    lines = str(exc).strip().splitlines() or [""]
    ckpt_path = Path(run_dir) / "checkpoints" / checkpoint.LAST
    steps = None
    if ckpt_path.exists():
        try:
            steps = int(checkpoint.load(ckpt_path)["step"])
        except Exception:  # noqa: BLE001 - the record matters more than the step count
            steps = None
    summary = {"status": "oom", "message": f"{type(exc).__name__}: {lines[0][:500]}", "steps": steps,
               "test_accuracy": None,
               "finished_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    if cfg is not None:
        summary.update(preset=cfg.preset, arch=cfg.arch.name, seed=cfg.train.seed)
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    write_summary(run_dir, summary)
    log.error("out of memory in %s: %s", run_dir, summary["message"])
    return summary


def _train(cfg: RunConfig, run_dir: Path, d: distributed.Dist, resume: bool, until_step: int | None,
           progress: bool | None, on_start) -> dict:
    t = cfg.train
    splits = batches.load_splits(cfg.data)
    fit_to_data(cfg, splits.info, len(splits.train))
    models.check(cfg.model, cfg.arch, splits.info.name)  # e.g. no Transformer matches: refused before any work
    if cfg.data.batch_size % d.world_size:
        raise ValueError(f"data.batch_size={cfg.data.batch_size} must be divisible by the number of processes "
                         f"({d.world_size})")
    plan = plan_phases(cfg, len(splits.train))

    ckpt_path = run_dir / "checkpoints" / checkpoint.LAST
    ckpt = checkpoint.load(ckpt_path) if resume and ckpt_path.exists() else None
    if ckpt is not None and ckpt["step"] >= plan.total_steps:
        done = read_summary(run_dir)
        if done and done.get("status") == "finished":
            log.info("run %s is already finished (%d steps); nothing to do", run_dir, ckpt["step"])
            return done

    if d.is_master:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / CONFIG_FILE).write_text(dump_yaml(cfg))
        if on_start is not None:
            on_start(cfg)
    torch.manual_seed(t.seed)  # the same initial parameters on every rank
    model = models.build(cfg.model, cfg.arch).to(d.device)
    optimizer = build_optimizer(model.parameters(), cfg.optim)
    gen = torch.Generator()  # the anchor generator: CPU, owned here, saved in checkpoints
    _seed_everything(t.seed + d.rank, gen)  # per-rank anchors and dropout
    step, wall_before = 0, 0.0
    if ckpt is not None:
        saved_arch = ckpt["config"].get("arch", {"name": "rnn"})
        if ckpt["config"]["model"] != cfg.model.to_dict() or saved_arch.get("name", "rnn") != cfg.arch.name or (
                "arch" in ckpt["config"] and saved_arch != cfg.to_dict()["arch"]):
            raise ValueError(f"{ckpt_path} was written for another model config than {run_dir / CONFIG_FILE}")
        saved_perm = ckpt.get("data", {}).get("permutation")
        now_perm = splits.extra_state.get("permutation")
        if saved_perm is not None and (now_perm is None or not torch.equal(saved_perm, now_perm)):
            raise RuntimeError(f"the data permutation saved in {ckpt_path} differs from the one "
                               f"{cfg.data.name!r} builds now (options {cfg.data.options}); refusing to resume")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        step, wall_before = int(ckpt["step"]), float(ckpt["wall_seconds"])
        rngs = ckpt["rng"]
        if len(rngs) == d.world_size:
            checkpoint.restore_rng(rngs[d.rank], gen, d.device)
        else:
            log.warning("checkpoint has RNG states for %d processes, this run has %d: reseeding (not exact)",
                        len(rngs), d.world_size)
            _seed_everything(t.seed + d.rank + 7919 * step, gen)
    raw = model
    if d.enabled:
        # The classifier gets no gradient while pretraining (and the LSTM none with truncate=0 and no aux).
        model = torch.nn.parallel.DistributedDataParallel(
            raw, device_ids=[d.device.index] if d.device.type == "cuda" else None, find_unused_parameters=True)

    metrics = MetricsLog(run_dir, tensorboard=t.tensorboard) if d.is_master else None
    n_params = raw.num_parameters()
    if d.is_master:
        log.info("model %s", models.parameter_text(raw, cfg.model, cfg.arch))
        log.info("run folder %s | device %s x%d | parameters %s | %d steps/epoch | pretrain %d steps, "
                 "total %d steps%s", run_dir, device_name(d.device), d.world_size, n_params,
                 plan.steps_per_epoch, plan.pretrain_steps, plan.total_steps,
                 f" | resuming at step {step}" if ckpt is not None else "")
        metrics.write({"kind": "event", "event": "resume" if ckpt is not None else "start", "step": step,
                       "world_size": d.world_size, "device": str(d.device), "params": n_params})

    def save_checkpoint() -> None:
        rngs = distributed.gather_objects(checkpoint.capture_rng(gen, d.device), d)
        if d.is_master:
            checkpoint.save(ckpt_path, {
                "config": cfg.to_dict(), "model": raw.state_dict(), "optimizer": optimizer.state_dict(),
                "step": step, "rng": rngs, "data": splits.extra_state, "world_size": d.world_size,
                "wall_seconds": wall_before + time.monotonic() - t0, "phase": phase_of(step, plan.pretrain_steps),
            })

    def run_eval() -> dict:
        te = time.monotonic()
        rec = {"kind": "eval", "step": step, "epoch": plan.epoch(step), "phase": phase_of(max(step - 1, 0), plan.pretrain_steps)}
        c, n = evaluate(raw, splits.test, cfg, d)
        rec.update(test_acc=100.0 * c / n, test_correct=c, test_count=n)
        if splits.val is not None:
            c, n = evaluate(raw, splits.val, cfg, d)
            rec.update(val_acc=100.0 * c / n, val_correct=c, val_count=n)
        rec["eval_seconds"] = time.monotonic() - te
        if d.is_master:
            metrics.write(rec)
            log.info("step %d (epoch %.2f): test accuracy %.2f%%%s", step, rec["epoch"], rec["test_acc"],
                     f", validation {rec['val_acc']:.2f}%" if "val_acc" in rec else "")
        return rec

    from tqdm.auto import tqdm

    show = d.is_master and (sys.stderr.isatty() if progress is None else progress)
    bar = tqdm(total=plan.total_steps, initial=step, disable=not show, unit="step", dynamic_ncols=True)
    t0 = time.monotonic()
    params = [p for p in raw.parameters()]
    acc = _Window()
    status, signum = "finished", 0
    try:
        with StopSignals() as stop:
            while step < plan.total_steps and not (until_step is not None and step >= until_step):
                epoch, position = divmod(step, plan.steps_per_epoch)
                loader = batches.train_batches(splits.train, cfg.data.batch_size, t.seed, epoch, position, d.rank,
                                               d.world_size, cfg.data.workers)
                for x, lengths, y in loader:
                    phase = phase_of(step, plan.pretrain_steps)
                    lr = lr_at(step, cfg.optim, plan.pretrain_steps, plan.total_steps)
                    for group in optimizer.param_groups:
                        group["lr"] = lr
                    with _amp(cfg, d.device):
                        out = model(x.to(d.device, non_blocking=True), lengths, y.to(d.device, non_blocking=True),
                                    generator=gen, phase=phase, aux_weight=t.aux_weight)
                    over_budget = t.max_minutes > 0 and (time.monotonic() - t0) > 60.0 * t.max_minutes
                    # One collective per step: every rank learns whether any rank saw a bad loss or a stop.
                    bad, sig, budget = distributed.all_reduce(
                        [float(not torch.isfinite(out.loss.detach()).item()), float(stop.signum), float(over_budget)],
                        d, op=torch.distributed.ReduceOp.MAX)
                    if bad:
                        raise NonFiniteLoss(
                            f"non-finite loss ({out.loss.item()}) at step {step} in phase {phase!r} (lr {lr:g}); "
                            f"stopped without writing a checkpoint. The last good one is {ckpt_path}"
                            f"{'' if ckpt_path.exists() else ' (none written yet)'}; lower optim.lr or check optim.clip")
                    out.loss.backward()
                    norm = torch.nn.utils.clip_grad_norm_(params, cfg.optim.clip if cfg.optim.clip > 0 else math.inf)
                    if not torch.isfinite(norm):
                        raise NonFiniteLoss(
                            f"non-finite gradient norm at step {step} in phase {phase!r} (lr {lr:g}); stopped without "
                            f"writing a checkpoint. The last good one is {ckpt_path}; lower optim.lr or set optim.clip")
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                    step += 1
                    acc.add(out, y, norm, x.shape[0] * d.world_size)
                    bar.update(1)

                    if step % t.log_every == 0 or step == plan.total_steps:
                        rec = acc.flush(step, plan.epoch(step), phase, lr, d.device)
                        if d.is_master:
                            metrics.write(rec)
                            bar.set_postfix(loss=f"{rec['loss']:.4f}", acc=rec.get("train_acc", "-"), refresh=False)
                            if not show:  # a log line per interval where no bar is drawn (files, CI, nohup)
                                log.info("step %d/%d %s loss %.4f%s lr %.2e %.1f ex/s", step, plan.total_steps,
                                         phase, rec["loss"], f" acc {rec['train_acc']:.1f}%" if "train_acc" in rec
                                         else "", lr, rec.get("examples_per_s", 0.0))
                    if t.eval_every and step % t.eval_every == 0 and step < plan.total_steps:
                        run_eval()
                    if t.checkpoint_every and step % t.checkpoint_every == 0 and step < plan.total_steps:
                        save_checkpoint()
                    if sig:
                        status, signum = "signal", int(sig)
                    elif budget:
                        status = "time_budget"
                    elif until_step is not None and step >= until_step:
                        status = "until_step"
                    if status != "finished" or step >= plan.total_steps:
                        break
                if status != "finished":
                    break
            if step < plan.total_steps and status == "finished":  # until_step at or before the resume point
                status = "until_step"
            save_checkpoint()
    except NonFiniteLoss as exc:
        if d.is_master:
            log.error("%s", exc)
            metrics.write({"kind": "event", "event": "non_finite", "step": step, "message": str(exc)})
            write_summary(run_dir, {"status": "non_finite", "message": str(exc), "steps": step,
                                    "epochs": plan.epoch(step), "test_accuracy": None})
        raise
    finally:
        bar.close()
        if metrics is not None and (status != "finished" or sys.exc_info()[0] is not None):
            metrics.close()

    wall = wall_before + time.monotonic() - t0
    summary = {
        "status": status, "preset": cfg.preset, "arch": cfg.arch.name, "steps": step, "total_steps": plan.total_steps,
        "pretrain_steps": plan.pretrain_steps, "epochs": plan.epoch(step), "steps_per_epoch": plan.steps_per_epoch,
        "seed": t.seed, "device": device_name(d.device), "world_size": d.world_size, "wall_seconds": wall,
        "parameters": n_params, "torch": torch.__version__, "test_accuracy": None,
    }
    if status == "signal":
        summary["signal"] = signal.Signals(signum).name
    if status == "finished":
        rec = run_eval()
        summary.update(test_accuracy=rec["test_acc"], test_correct=rec["test_correct"], test_count=rec["test_count"])
        if "val_acc" in rec:
            summary.update(val_accuracy=rec["val_acc"], val_count=rec["val_count"])
        summary["param_sha256"] = distributed.gather_objects(param_sha256(raw), d)
        summary["wall_seconds"] = wall_before + time.monotonic() - t0
    summary["finished_at"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    if d.is_master:
        if status == "finished":
            metrics.write({"kind": "event", "event": "finished", "step": step, "test_acc": summary["test_accuracy"]})
            metrics.close()
            from auxrnn.train.plot import plot_run

            plot_run(run_dir)
        else:
            log.info("stopped at step %d of %d (%s); checkpoint %s. Resume with: auxrnn train --resume %s",
                     step, plan.total_steps, status, ckpt_path, run_dir)
        write_summary(run_dir, summary)
    return summary


class _Window:
    """Running sums between two metrics lines."""

    def __init__(self):
        self.reset()
        self.t = time.monotonic()

    def reset(self):
        self.n = 0
        self.sums = {"loss": 0.0, "sup_loss": 0.0, "aux_loss": 0.0, "grad_norm": 0.0}
        self.counts = {k: 0 for k in self.sums}
        self.correct = self.scored = self.examples = 0

    def add(self, out, y, norm, examples: int) -> None:
        for key, v in (("loss", out.loss), ("sup_loss", out.sup_loss), ("aux_loss", out.aux_loss), ("grad_norm", norm)):
            if v is not None:
                self.sums[key] += float(v.detach())
                self.counts[key] += 1
        if out.logits is not None:
            self.correct += int((out.logits.argmax(-1).cpu() == y).sum())
            self.scored += int(y.numel())
        self.examples += examples
        self.n += 1

    def flush(self, step: int, epoch: float, phase: str, lr: float, device: torch.device) -> dict:
        now = time.monotonic()
        rec = {"kind": "train", "step": step, "epoch": epoch, "phase": phase, "lr": lr}
        for k, s in self.sums.items():
            if self.counts[k]:
                rec[k] = s / self.counts[k]
        if self.scored:
            rec["train_acc"] = 100.0 * self.correct / self.scored
        rec["examples_per_s"] = self.examples / max(now - self.t, 1e-9)
        rec["peak_mem_mib"] = peak_memory_mib(device)
        self.t = now
        self.reset()
        return rec
