"""Training layer: configuration, the loop, checkpoints, DDP, metrics (see docs/experiments.md)."""
from auxrnn.train.config import (DataConfig, OptimConfig, RunConfig, TrainConfig, build_config, fit_to_data,
                                 list_presets, validate)
from auxrnn.train.loop import NonFiniteLoss, evaluate, train

__all__ = ["DataConfig", "OptimConfig", "RunConfig", "TrainConfig", "build_config", "fit_to_data", "list_presets",
           "validate", "NonFiniteLoss", "evaluate", "train"]
