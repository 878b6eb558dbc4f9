"""The training loop: two phases, evaluation, checkpoints, exact resume, DDP. Plain PyTorch.

    phase 1 "pretrain"  steps [0, P):      loss = aux_loss                         (paper §1.5)
    phase 2 "train"     steps [P, P + N):  loss = sup_loss + aux_weight * aux_loss   (decision T14)

`train()` runs the named steps of a `Run`:

    Run(cfg, ...)      load the data, fit the config to it, plan the phases, build the model once
    run.restore()      continue from the run's checkpoint (last.pt, else prev.pt), refusing anything that
                       would make a different run (model, data permutation/quantiser, learning rate)
    run.step(batch)    one optimizer step; no host synchronisation (losses and the finite check stay on
                       the device until the next log line)
    run.log()          every train.log_every steps: sync once, check finite, write a metrics line, agree
                       with the other ranks on stopping (signal, time budget); on a CPU, free heap pages go back
    run.evaluate()     test (and validation) accuracy; with train.keep_best, best.pt when validation improves
    run.checkpoint()   everything a resume needs, the running metrics window included
    run.finish()       the final evaluation and summary.json

A stop (SIGINT/SIGTERM, the time budget, `until_step`) always writes a checkpoint first, so
`auxrnn train --resume RUN` carries on exactly. The data is read before the run folder is taken, and a resume
is checked against its checkpoint before anything in the folder changes: a refused run leaves it as it was.
"""
from __future__ import annotations

import datetime as _dt
import gc
import logging
import math
import random
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch

from auxrnn import models
from auxrnn.memory import is_oom
from auxrnn.train import batches, checkpoint, distributed, precision
from auxrnn.train.config import RunConfig, dump_yaml, fit_to_data, from_dict
from auxrnn.train.cpu import flush_denormals, release_free_memory, use_threads
from auxrnn.train.evaluation import device_name, evaluate
from auxrnn.train.metrics import MetricsLog, MetricsWindow, read_summary, write_summary
from auxrnn.train.progress import progress_bar, terminal_has_width
from auxrnn.train.signals import StopSignals
from auxrnn.train.optim import build_optimizer, lr_at, phase_of, plan_phases
from auxrnn.train.runs import CONFIG_FILE, owned, write_atomic

log = logging.getLogger("auxrnn.train")


class NonFiniteLoss(RuntimeError):
    """The loss or the gradient norm became nan/inf; the last good checkpoint is kept."""


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
        run_dir: the run folder: config.yaml, metrics.jsonl, tensorboard/, checkpoints/, summary.json.
        resume: continue from the run's checkpoint (checkpoint.resume_point); from step 0 if it never wrote one.
        until_step: stop (with a checkpoint) once this many global steps are done.
        progress: show a tqdm bar; None = when stderr is a terminal.
        on_start: called on rank 0 as on_start(cfg) once the config is fitted to the data, before training.
    Returns:
        The summary dict; summary["status"] is "finished", "until_step", "time_budget" or "signal".
    Raises:
        NonFiniteLoss when the loss or gradient becomes nan/inf (the last checkpoint is left as it was).
    """
    run_dir = Path(run_dir)
    if until_step is not None and until_step < 1:
        raise ValueError(f"--until-step {until_step}: give a number of steps of at least 1")
    d = distributed.setup(cfg.train.device)
    threads = use_threads(cfg.train.threads)  # before any parallel work: this process's share of the cores
    run = None
    try:
        run = Run(cfg, run_dir, d, threads)  # reads the data: a bad file is refused before the run folder exists
        with owned(run_dir, d.is_master), flush_denormals(d.device):  # one process trains in a run folder; T22
            try:
                return run.fit(resume, until_step, progress, on_start)
            finally:
                run.release()
    except BaseException as exc:
        # Out of memory while training is this run's result (reproduce records it; decision T21).
        if run is not None and is_oom(exc) and d.is_master:
            record_oom(run_dir, exc, cfg)
        raise
    finally:
        distributed.teardown(d)


def record_oom(run_dir: Path, exc: BaseException, cfg: RunConfig | None = None) -> dict:
    """Write summary.json with status "oom" (the last checkpoint, if any, is left as it was)."""
    lines = str(exc).strip().splitlines() or [""]
    try:
        ckpt, _ = checkpoint.resume_point(run_dir)
        steps = int(ckpt["step"]) if ckpt is not None else None
    except checkpoint.CheckpointError:  # the record matters more than the step count
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


class Run:
    """One run's state (data, model, optimizer, anchor generator, step) and the loop's named steps."""

    def __init__(self, cfg: RunConfig, run_dir: Path, d: distributed.Dist, threads: tuple[int, str]):
        self.cfg, self.run_dir, self.d, self.threads = cfg, run_dir, d, threads
        with distributed.node_leader_first(d):  # one fetch per node at most (decision D11)
            try:
                self.splits = batches.load_splits(cfg.data)
            except MemoryError as exc:  # not this run's result: a damaged file can claim a huge array
                raise ValueError(f"the data of {cfg.data.name!r} {cfg.data.options} claims more memory than there "
                                 f"is ({exc}); a damaged file can declare a huge array") from None
        fit_to_data(cfg, self.splits.info, len(self.splits.train))
        models.check(cfg.model, cfg.arch, self.splits.info)  # e.g. no matching Transformer: before any work
        if cfg.data.batch_size % d.world_size:
            raise ValueError(f"data.batch_size={cfg.data.batch_size} must be divisible by the number of processes "
                             f"({d.world_size})")
        self.plan = plan_phases(cfg, len(self.splits.train))
        self.precision = precision.resolve(cfg.train.precision, d.device)  # a resume keeps its checkpoint's
        self.train_probe = batches.fixed_subset(self.splits.train, cfg.train.train_eval_size)
        self.ckpt_path = run_dir / checkpoint.FOLDER / checkpoint.LAST
        self.best = checkpoint.Best(run_dir) if cfg.train.keep_best else None
        self.step, self.wall_before, self.t0 = 0, 0.0, time.monotonic()
        self.window = MetricsWindow(d.device)
        self.metrics: MetricsLog | None = None
        self._ddp, self._ddp_find_unused = None, None

    # ------------------------------------------------------------------------------------------ setup
    def _build(self) -> None:
        """Model, optimizer and anchor generator, seeded as a fresh run (a resume then overwrites them)."""
        torch.manual_seed(self.cfg.train.seed)  # the same initial parameters on every rank (decision T17)
        self.raw = models.build(self.cfg.model, self.cfg.arch).to(self.d.device)
        self.optimizer = build_optimizer(self.raw.parameters(), self.cfg.optim)  # one for both phases: decision T23
        self.gen = torch.Generator()  # the anchor generator: CPU, owned here, saved in checkpoints
        _seed_everything(self.cfg.train.seed + self.d.rank, self.gen)  # per-rank anchors and dropout (decision T17)
        self.params = list(self.raw.parameters())

    def restore(self, ckpt: dict, path: Path) -> None:
        """Continue from `ckpt`, refusing another model (keys added since it was written: defaults), data or schedule."""
        cfg, d, then = self.cfg, self.d, from_dict(ckpt["config"]).to_dict()
        if then["model"] != cfg.model.to_dict() or then["arch"] != cfg.to_dict()["arch"]:
            raise ValueError(f"{path} was written for another model config than {self.run_dir / CONFIG_FILE}")
        saved_data, now_data = ckpt.get("data", {}), self.splits.extra_state
        for key, saved in saved_data.items():
            if key not in now_data or not torch.equal(saved, now_data[key]):
                raise RuntimeError(f"the data {key} saved in {path} differs from the one {cfg.data.name!r} builds "
                                   f"now (options {cfg.data.options}); refusing to resume")
        step = int(ckpt["step"])
        self._check_schedule(ckpt, step, path)
        self.raw.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.step, self.wall_before = step, float(ckpt["wall_seconds"])
        self.precision = ckpt.get("precision", self.precision)
        rngs = ckpt["rng"]
        if len(rngs) == d.world_size:
            checkpoint.restore_rng(rngs[d.rank], self.gen, d.device)
        else:
            log.warning("checkpoint has RNG states for %d processes, this run has %d: reseeding (not exact)",
                        len(rngs), d.world_size)
            _seed_everything(cfg.train.seed + d.rank + 7919 * step, self.gen)
        if "window" in ckpt:
            self.window.load_state(ckpt["window"])
        if self.best is not None:
            self.best.restore()

    def _check_schedule(self, ckpt: dict, step: int, path: Path) -> None:
        """A resumed run may change its length (train.steps / epochs) only where that keeps its learning rate."""
        plan, o = self.plan, self.cfg.optim
        before = ckpt.get("plan")
        if before is None or (before["pretrain_steps"], before["total_steps"]) == (plan.pretrain_steps, plan.total_steps):
            return
        if step > plan.total_steps:
            raise ValueError(f"{path} has done {step} steps; the new length ({plan.total_steps} steps) would end "
                             "before them")
        old = lr_at(step, o, before["pretrain_steps"], before["total_steps"])
        new = lr_at(step, o, plan.pretrain_steps, plan.total_steps)
        if not math.isclose(old, new, rel_tol=1e-12):
            raise ValueError(
                f"changing the run's length from {before['total_steps']} to {plan.total_steps} steps would move the "
                f"learning rate at step {step} from {old:.3g} to {new:.3g} (optim.schedule={o.schedule!r}); a resumed "
                "run continues its schedule without a jump. Keep the length, or start a new run (with "
                "optim.schedule=constant a run can be extended at any step; with cosine or step only while its rate "
                "does not depend on the length yet: in pretraining or warmup)")

    def release(self) -> None:
        """Drop the DDP wrapper while the process group still exists: its reducer must go first, or the
        process can abort at exit ("terminate called without an active exception")."""
        self._ddp = None
        gc.collect()

    def _model_for(self, phase: str) -> torch.nn.Module:
        """The module the step calls: the model itself, or its DDP wrapper for this phase. DDP searches the graph
        for parameters without a gradient only where the phase can leave some out (pretraining leaves the
        classifier out): that search costs a pass over the graph every step."""
        if not self.d.enabled:
            return self.raw
        find = not self.raw.all_parameters_used(phase)
        if self._ddp is None or self._ddp_find_unused != find:
            self._ddp = None  # the old wrapper's gradient hooks go with it before the new one registers its own
            self._ddp = torch.nn.parallel.DistributedDataParallel(
                self.raw, device_ids=[self.d.device.index] if self.d.device.type == "cuda" else None,
                find_unused_parameters=find)
            self._ddp_find_unused = find
        return self._ddp

    # ------------------------------------------------------------------------------------------ steps
    def step_once(self, x: torch.Tensor, lengths: torch.Tensor, y: torch.Tensor) -> None:
        """One optimizer step on this rank's slice of the global batch (decision T4); nothing waits for the device."""
        cfg, d = self.cfg, self.d
        phase = phase_of(self.step, self.plan.pretrain_steps)
        lr = lr_at(self.step, cfg.optim, self.plan.pretrain_steps, self.plan.total_steps)  # decision T2
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        y = y.to(d.device, non_blocking=True)
        with precision.kernels(self.precision, d.device):  # decision T24: float32 is IEEE float32, backward too
            with precision.autocast(self.precision, d.device):  # decisions T24, T28
                out = self._model_for(phase)(x.to(d.device, non_blocking=True), lengths, y, generator=self.gen,
                                             phase=phase, aux_weight=cfg.train.aux_weight)
            out.loss.backward()
        # Clipping, decision T3 (RNN gradients can explode); a non-finite norm is caught at the next log line.
        norm = torch.nn.utils.clip_grad_norm_(self.params, cfg.optim.clip if cfg.optim.clip > 0 else math.inf)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.window.add(out, y, norm, x.shape[0] * d.world_size)

    def log(self, show_bar: bool, bar) -> None:
        """The log line: the one host synchronisation of the interval; raises NonFiniteLoss."""
        step, phase = self.step, phase_of(self.step - 1, self.plan.pretrain_steps)
        lr = lr_at(self.step - 1, self.cfg.optim, self.plan.pretrain_steps, self.plan.total_steps)
        first = self.window.last_flushed_step  # steps first .. step-1 (0-based) are in this interval
        rec = self.window.flush(step, self.plan.epoch(step), phase, lr)
        bad = distributed.all_reduce([float(rec.pop("non_finite"))], self.d, op=torch.distributed.ReduceOp.MAX)[0]
        if bad:
            where = f"at step {first}" if step - first == 1 else f"in steps {first}..{step - 1}"
            what = (f"non-finite loss ({rec['loss']})" if not math.isfinite(rec.get("loss", math.nan))
                    else "non-finite gradient norm")
            none = "" if self.ckpt_path.exists() else " (none written yet)"
            raise NonFiniteLoss(f"{what} {where} in phase {phase!r} (lr {lr:g}); stopped without writing a checkpoint. "
                                f"The last good one is {self.ckpt_path}{none}; lower optim.lr or check optim.clip")
        if self.d.is_master:
            self.metrics.write(rec)
            bar.set_postfix(loss=f"{rec['loss']:.4f}", acc=rec.get("train_acc", "-"), refresh=False)
            if not show_bar:  # a log line per interval where no bar is drawn (files, CI, nohup)
                log.info("step %d/%d %s loss %.4f%s lr %.2e %.1f ex/s", step, self.plan.total_steps, phase,
                         rec["loss"], f" acc {rec['train_acc']:.1f}%" if "train_acc" in rec else "", lr,
                         rec.get("examples_per_s", 0.0))

    def evaluate(self) -> dict:
        te = time.monotonic()
        step = self.step
        rec = {"kind": "eval", "step": step, "epoch": self.plan.epoch(step),
               "phase": phase_of(max(step - 1, 0), self.plan.pretrain_steps)}
        # validation only where data.val_size carves one (decision T16); a fixed training subset for Fig. 5
        for key, ds in (("test", self.splits.test), ("val", self.splits.val), ("train_eval", self.train_probe)):
            if ds is not None:
                c, n = evaluate(self.raw, ds, self.cfg, self.d, self.precision)
                rec.update({f"{key}_acc": 100.0 * c / n, f"{key}_correct": c, f"{key}_count": n})
        rec["eval_seconds"] = time.monotonic() - te
        if self.best is not None:
            self.best.offer(rec["val_acc"], step, self.d.is_master, lambda: {
                "config": self.cfg.to_dict(), "model": self.raw.state_dict(), "data": self.splits.extra_state})
        if self.d.is_master:
            self.metrics.write(rec)
            log.info("step %d (epoch %.2f): test accuracy %.2f%%%s%s", step, rec["epoch"], rec["test_acc"],
                     f", validation {rec['val_acc']:.2f}%" if "val_acc" in rec else "",
                     f", training subset {rec['train_eval_acc']:.2f}%" if "train_eval_acc" in rec else "")
        return rec

    def checkpoint(self) -> None:
        rngs = distributed.gather_objects(checkpoint.capture_rng(self.gen, self.d.device), self.d)
        if self.d.is_master:
            checkpoint.save(self.ckpt_path, {
                "config": self.cfg.to_dict(), "model": self.raw.state_dict(), "optimizer": self.optimizer.state_dict(),
                "step": self.step, "rng": rngs, "precision": self.precision, "data": self.splits.extra_state, "world_size": self.d.world_size,
                "wall_seconds": self.wall_before + time.monotonic() - self.t0,
                "phase": phase_of(self.step, self.plan.pretrain_steps), "window": self.window.state(),
                "plan": {"pretrain_steps": self.plan.pretrain_steps, "total_steps": self.plan.total_steps},
            })

    def _stop_flags(self, stop: StopSignals) -> tuple[int, bool]:
        """(signal number, over budget), agreed by every rank; a collective, so only at sync points under DDP."""
        t = self.cfg.train
        over = t.max_minutes > 0 and (time.monotonic() - self.t0) > 60.0 * t.max_minutes
        sig, budget = distributed.all_reduce([float(stop.signum), float(over)], self.d,
                                             op=torch.distributed.ReduceOp.MAX)
        return int(sig), bool(budget)

    # ------------------------------------------------------------------------------------------ the loop
    def fit(self, resume: bool, until_step: int | None, progress: bool | None, on_start) -> dict:
        cfg, d, t, plan = self.cfg, self.d, self.cfg.train, self.plan
        ckpt, ckpt_file = checkpoint.resume_point(self.run_dir) if resume else (None, None)
        if ckpt is not None and ckpt["step"] >= plan.total_steps:
            done = read_summary(self.run_dir)
            if done and done.get("status") == "finished":
                log.info("run %s is already finished (%d steps); nothing to do", self.run_dir, ckpt["step"])
                return done
        if ckpt is not None and until_step is not None and until_step <= ckpt["step"]:
            raise ValueError(f"--until-step {until_step}: {ckpt_file} has already done {ckpt['step']} steps; give a "
                             "later step")
        self._build()
        if ckpt is not None:
            self.restore(ckpt, ckpt_file)  # every refusal comes before the first write into the folder
        if d.is_master:
            if ckpt is None:
                checkpoint.discard_unfinished(self.run_dir)
            config, text = self.run_dir / CONFIG_FILE, dump_yaml(cfg)
            if not config.exists() or config.read_text(errors="replace") != text:
                write_atomic(config, text)
            if on_start is not None:
                on_start(cfg)
        distributed.same_on_every_rank(self.step, d, f"the ranks found different checkpoints in {self.run_dir}: every "
                                       "node must see the same run folder (a shared file system)")
        if d.is_master:
            # What was logged after the checkpoint this run starts from is dropped: those steps are trained
            # again (a run that starts from step 0 in a folder an earlier attempt left keeps nothing of it).
            self.metrics = MetricsLog(self.run_dir, tensorboard=t.tensorboard,
                                      keep_until=self.step if ckpt is not None else -1)
            n_params = self.raw.num_parameters()
            log.info("model %s", models.parameter_text(self.raw, cfg.model, cfg.arch))
            log.info("run folder %s | device %s x%d (threads: %s) | precision %s | parameters %s | %d steps/epoch | "
                     "%s%s", self.run_dir, device_name(d.device), d.world_size,
                     self.threads[1], precision.describe(t.precision, d.device) if ckpt is None else self.precision,
                     n_params, plan.steps_per_epoch, plan.describe(),
                     f" | resuming at step {self.step} from {ckpt_file.name}" if ckpt is not None else "")
            self.metrics.write({"kind": "event", "event": "resume" if ckpt is not None else "start", "step": self.step,
                                "world_size": d.world_size, "device": str(d.device), "params": n_params,
                                "threads": self.threads[0], "threads_from": self.threads[1],
                                "precision": self.precision})
        show = d.is_master and (terminal_has_width() if progress is None else progress)
        bar, above_bar = progress_bar(plan.total_steps, self.step, show)
        self.t0 = time.monotonic()
        self.window.restart_clock(self.step)
        status, signum = "finished", 0
        try:
            with StopSignals() as stop, above_bar:
                status, signum = self._loop(stop, until_step, show, bar)
                self.checkpoint()
        except NonFiniteLoss as exc:
            if d.is_master:
                log.error("%s", exc)
                self.metrics.write({"kind": "event", "event": "non_finite", "step": self.step, "message": str(exc)})
                write_summary(self.run_dir, {"status": "non_finite", "message": str(exc), "steps": self.step,
                                             "epochs": plan.epoch(self.step), "test_accuracy": None})
            raise
        finally:
            bar.close()
            if self.metrics is not None and (status != "finished" or sys.exc_info()[0] is not None):
                self.metrics.close()
        return self.finish(status, signum)

    def _loop(self, stop: StopSignals, until_step: int | None, show: bool, bar) -> tuple[str, int]:
        """Steps until the plan, `until_step` or a stop; returns (status, signal number)."""
        t, plan, d = self.cfg.train, self.plan, self.d
        while self.step < plan.total_steps and not (until_step is not None and self.step >= until_step):
            epoch, position = divmod(self.step, plan.steps_per_epoch)  # data order: decision T15
            loader = batches.train_batches(self.splits.train, self.cfg.data.batch_size, t.seed, epoch, position,
                                           d.rank, d.world_size, self.cfg.data.workers)
            for x, lengths, y in loader:
                self.step_once(x, lengths, y)
                bar.update(1)
                step = self.step
                synced = False

                def sync() -> None:  # log (and check) once per step at most, when the step is a sync point
                    nonlocal synced
                    if not synced:
                        self.log(show, bar)
                        release_free_memory(d.device)
                        synced = True

                if step % t.log_every == 0 or step == plan.total_steps:
                    sync()
                if t.eval_every and step % t.eval_every == 0 and step < plan.total_steps:
                    self.evaluate()
                if t.checkpoint_every and step % t.checkpoint_every == 0 and step < plan.total_steps:
                    sync()  # never checkpoint an unchecked (possibly non-finite) model
                    self.checkpoint()
                # Stop flags: every step in one process (host values); at sync points only under DDP.
                if synced or not d.enabled:
                    sig, budget = self._stop_flags(stop)
                    if sig or budget:
                        sync()
                        return ("signal", sig) if sig else ("time_budget", 0)
                if until_step is not None and step >= until_step:
                    sync()
                    return "until_step", 0
                if step >= plan.total_steps:
                    return "finished", 0
        # until_step at or before the resume point
        return ("until_step" if self.step < plan.total_steps else "finished"), 0

    def finish(self, status: str, signum: int) -> dict:
        cfg, d, plan, step = self.cfg, self.d, self.plan, self.step
        summary = {
            "status": status, "preset": cfg.preset, "arch": cfg.arch.name, "steps": step,
            "total_steps": plan.total_steps, "pretrain_steps": plan.pretrain_steps, "epochs": plan.epoch(step),
            "steps_per_epoch": plan.steps_per_epoch, "seed": cfg.train.seed, "device": device_name(d.device),
            "threads": self.threads[0], "threads_from": self.threads[1], "world_size": d.world_size,
            "precision": self.precision,
            "wall_seconds": self.wall_before + time.monotonic() - self.t0,
            "parameters": self.raw.num_parameters(), "torch": torch.__version__, "test_accuracy": None,
            "checkpoint": str(self.ckpt_path.relative_to(self.run_dir)),
        }
        if status == "signal":
            summary["signal"] = signal.Signals(signum).name
        if status == "finished":  # decision T18: the reported number is the test accuracy at the end
            rec = self.evaluate()
            summary.update(test_accuracy=rec["test_acc"], test_correct=rec["test_correct"], test_count=rec["test_count"])
            for key in ("val", "train_eval"):
                if f"{key}_acc" in rec:
                    summary.update({f"{key}_accuracy": rec[f"{key}_acc"], f"{key}_count": rec[f"{key}_count"]})
            summary["param_sha256"] = distributed.gather_objects(checkpoint.param_sha256(self.raw), d)
            summary["wall_seconds"] = self.wall_before + time.monotonic() - self.t0
        if self.best is not None and self.best.step is not None:
            summary.update(self.best.summary())
        summary["finished_at"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        if d.is_master:
            if status == "finished":
                self.metrics.write({"kind": "event", "event": "finished", "step": step,
                                    "test_acc": summary["test_accuracy"]})
                self.metrics.close()
                from auxrnn.train.plot import plot_run

                plot_run(self.run_dir)
            else:
                log.info("stopped at step %d of %d (%s); checkpoint %s. Resume with: auxrnn train --resume %s",
                         step, plan.total_steps, status, self.ckpt_path, self.run_dir)
            write_summary(self.run_dir, summary)
        return summary
