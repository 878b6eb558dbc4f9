"""Optimizer construction and the learning-rate schedule.

The schedule is a pure function of the global step and the phase boundaries, so a resumed run gets the
right rate with no scheduler state to save. Each phase (auxiliary-only pretraining, then training) runs
its own schedule from the peak rate: the second phase changes the loss, so it starts afresh (decision T2).
The optimizer is built once for both phases, so its state carries over the boundary (decision T23).
`plan_phases` gives both phases' lengths in steps.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from auxrnn.train import batches
from auxrnn.train.config import OptimConfig, RunConfig


def build_optimizer(params, cfg: OptimConfig) -> torch.optim.Optimizer:
    """Adam or RMSProp with PyTorch's default betas / alpha / eps (decision T1)."""
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"optim.optimizer={cfg.optimizer!r} is invalid: choose one of adam, rmsprop")


def phase_of(step: int, pretrain_steps: int) -> str:
    """'pretrain' for the first pretrain_steps global steps, then 'train'."""
    return "pretrain" if step < pretrain_steps else "train"


def lr_at(step: int, cfg: OptimConfig, pretrain_steps: int, total_steps: int) -> float:
    """Learning rate for global step `step` (0-based); the presets' step schedule is decision T2.

        |<-- pretrain_steps -->|<------- total_steps - pretrain_steps ------->|
        warmup, then schedule  warmup, then schedule (restarted at the phase boundary)
    """
    if step < pretrain_steps:
        i, n = step, pretrain_steps
    else:
        i, n = step - pretrain_steps, max(total_steps - pretrain_steps, 1)
    if cfg.warmup_steps and i < cfg.warmup_steps:
        return cfg.lr * (i + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "step":  # decision T2: x gamma (0.5) after every decay_every (30%) of the phase
        every = max(1, int(round(cfg.decay_every * n)))
        return cfg.lr * cfg.gamma ** (i // every)
    if cfg.schedule == "cosine":
        w = min(cfg.warmup_steps, n - 1) if cfg.warmup_steps else 0
        progress = min(max((i - w) / max(n - w, 1), 0.0), 1.0)
        floor = cfg.lr * cfg.min_lr
        return floor + (cfg.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"optim.schedule={cfg.schedule!r} is invalid: choose one of constant, step, cosine")


@dataclass
class Plan:
    steps_per_epoch: int
    pretrain_steps: int
    total_steps: int

    def epoch(self, step: int) -> float:
        return step / self.steps_per_epoch

    def describe(self) -> str:
        """train.steps=60 with 20 pretraining steps trains 80: the run header says so, not only the total."""
        if not self.pretrain_steps:
            return f"{self.total_steps} step{'' if self.total_steps == 1 else 's'}"
        return (f"{self.total_steps} steps in all: {self.total_steps - self.pretrain_steps} of training plus "
                f"{self.pretrain_steps} of pretraining (auxiliary loss only) before them")


def plan_phases(cfg: RunConfig, n_train: int) -> Plan:
    """Phase lengths in steps, from epochs or steps (one epoch = n_train // batch_size steps)."""
    spe = batches.steps_per_epoch(n_train, cfg.data.batch_size)
    t = cfg.train
    pre = t.pretrain_steps or t.pretrain_epochs * spe
    main = t.steps or t.epochs * spe
    return Plan(spe, pre, pre + main)
