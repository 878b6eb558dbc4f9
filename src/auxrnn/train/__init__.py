"""Training layer: configuration, the loop, checkpoints, DDP, metrics (see docs/experiments.md).

The config names load with the package; the loop's (torch) on first use, so that reading a run's
config (`auxrnn.train.config`) never imports torch.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from auxrnn.train.config import (DataConfig, OptimConfig, RunConfig, TrainConfig, build_config, fit_to_data,
                                 list_presets, validate)

__all__ = ["DataConfig", "OptimConfig", "RunConfig", "TrainConfig", "build_config", "fit_to_data", "list_presets",
           "validate", "NonFiniteLoss", "evaluate", "train"]
_FROM_LOOP = ("NonFiniteLoss", "evaluate", "train")


def __getattr__(name: str) -> Any:
    if name not in _FROM_LOOP:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from auxrnn.train import loop

    value = getattr(loop, name)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # pragma: no cover
    from auxrnn.train.evaluation import evaluate
    from auxrnn.train.loop import NonFiniteLoss, train
