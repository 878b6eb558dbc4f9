"""Every classifier of the pipeline, side by side, and the one function that builds a run's model.

    config.py           ModelConfig (model.*), ArchConfig (arch.*), the choice tuples; no torch
    auxrnn.py           AuxRNN: LSTM / r-LSTM / p-LSTM (one step = one forward call), StepOutput
    transformer.py      TransformerClassifier, TransformerConfig, matched to the r-LSTM's parameter count
    pretrained_lstm.py  SequencePretrainedLSTM (SA-LSTM, LM-LSTM), PretrainedLSTMConfig, transfer_pretrained
    architectures.py    the architecture registry: @register_arch in each architecture's file (timm's style)
    registry.py         build(model, arch), check(model, arch), build_trained; build_model(name, cfg) for library use:
                        dispatch through the architecture registry
    objectives.py       the objectives model.aux can name (built in + entry-point group auxrnn.objectives),
                        build_objective(name, cfg): the one mapping from model.* to an objective
    table.py            the parameter table of docs/baselines.md (`python -m auxrnn.models` prints it)

    model = build(cfg.model, cfg.arch)     # the training loop and `auxrnn eval`, once per run

Every model answers `model(x, lengths, y, generator=g, phase=..., aux_weight=...) -> StepOutput`,
`model.predict(x, lengths)`, `model.num_parameters()` and `model.cfg.to_dict()` (docs/baselines.md).
The config names load with the package; the rest (torch) loads on first use, so that importing
`auxrnn.models.config` (the run-config schema does) never imports torch.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from auxrnn.models.config import (ARCHS, AUX_ALIASES, CELLS, ENCODERS, PHASES, POSITIONS, READOUTS, Arch,
                                  ArchConfig, ModelConfig)

_LAZY = {
    "architectures": ("ArchSpec", "arch_spec", "register_arch"),
    "auxrnn": ("AuxRNN", "StepOutput", "count_parameters", "rnn_parameters"),
    "transformer": ("TransformerClassifier", "TransformerConfig", "matched_transformer_config", "parameter_report",
                    "sinusoidal_positions", "transformer_parameters"),
    "pretrained_lstm": ("PRETRAIN_KINDS", "PretrainedLSTMConfig", "SequencePretrainedLSTM", "lm_windows",
                        "transfer_pretrained"),
    "registry": ("build", "build_model", "build_trained", "can_pretrain", "check", "model_config", "parameter_text",
                 "resolve"),
    "objectives": ("ARGUMENTS", "ENTRY_POINTS", "ObjectiveUnavailable", "build_objective", "objective_class",
                   "objective_classes", "registered", "unavailable"),
    "table": ("dataset_shapes", "parameter_table"),
}
_WHERE = {name: module for module, names in _LAZY.items() for name in names}

__all__ = ["ARCHS", "AUX_ALIASES", "CELLS", "ENCODERS", "PHASES", "POSITIONS", "READOUTS", "Arch", "ArchConfig",
           "ModelConfig",
           *_WHERE]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover - what the lazy names are, for type checkers and editors
    from auxrnn.models.architectures import ArchSpec, arch_spec, register_arch
    from auxrnn.models.auxrnn import AuxRNN, StepOutput, count_parameters, rnn_parameters
    from auxrnn.models.pretrained_lstm import (PRETRAIN_KINDS, PretrainedLSTMConfig, SequencePretrainedLSTM,
                                               lm_windows, transfer_pretrained)
    from auxrnn.models.objectives import (ARGUMENTS, ENTRY_POINTS, ObjectiveUnavailable, build_objective,
                                          objective_class, objective_classes, registered, unavailable)
    from auxrnn.models.registry import (build, build_model, build_trained, can_pretrain, check, model_config,
                                        parameter_text, resolve)
    from auxrnn.models.table import dataset_shapes, parameter_table
    from auxrnn.models.transformer import (TransformerClassifier, TransformerConfig, matched_transformer_config,
                                           parameter_report, sinusoidal_positions, transformer_parameters)
