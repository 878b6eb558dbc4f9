"""The learning-rate schedule is a pure function of the step, restarted in each phase."""
from __future__ import annotations

import math

import pytest

from auxrnn.train.config import OptimConfig
from auxrnn.train.optim import lr_at, phase_of


def test_constant_schedule_is_the_peak_rate_everywhere():
    cfg = OptimConfig(lr=0.01, schedule="constant")
    assert {lr_at(s, cfg, 5, 20) for s in range(20)} == {0.01}


def test_step_schedule_halves_every_thirty_percent_of_each_phase():
    cfg = OptimConfig(lr=1.0, schedule="step", gamma=0.5, decay_every=0.3)
    # pretraining: 10 steps, decay every 3; training: 100 steps, decay every 30
    assert [lr_at(s, cfg, 10, 110) for s in (0, 2, 3, 6, 9)] == [1.0, 1.0, 0.5, 0.25, 0.125]
    assert [lr_at(s, cfg, 10, 110) for s in (10, 39, 40, 70, 109)] == [1.0, 1.0, 0.5, 0.25, 0.125]


def test_cosine_schedule_runs_from_peak_to_floor_within_a_phase():
    cfg = OptimConfig(lr=2.0, schedule="cosine", min_lr=0.1)
    assert lr_at(0, cfg, 0, 101) == pytest.approx(2.0)
    assert lr_at(50, cfg, 0, 101) == pytest.approx(0.2 + 1.8 * 0.5 * (1 + math.cos(math.pi * 50 / 101)))
    assert lr_at(100, cfg, 0, 101) == pytest.approx(0.2 + 1.8 * 0.5 * (1 + math.cos(math.pi * 100 / 101)))
    assert all(lr_at(s, cfg, 0, 101) >= lr_at(s + 1, cfg, 0, 101) for s in range(100))


def test_warmup_is_linear_at_the_start_of_each_phase():
    cfg = OptimConfig(lr=1.0, schedule="constant", warmup_steps=4)
    assert [lr_at(s, cfg, 6, 20) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert lr_at(6, cfg, 6, 20) == 0.25


def test_phase_follows_from_the_step():
    assert [phase_of(s, 2) for s in range(4)] == ["pretrain", "pretrain", "train", "train"]
    assert phase_of(0, 0) == "train"
