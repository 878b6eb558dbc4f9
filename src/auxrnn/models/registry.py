"""From configs to modules: the one place a run's `model.*` + `arch.*` becomes its model, by dispatch
through the architecture registry (auxrnn.models.architectures; each architecture registers itself in its own
file with `@register_arch`, and auxrnn.models.config.ARCHS declares it to the run-config schema).

    arch.name=rnn          AuxRNN(model.*): LSTM / r-LSTM / p-LSTM by model.aux                  auxrnn.py
    arch.name=transformer  TransformerClassifier, matched to the r-LSTM of model.* unless
                           arch.d_model and arch.n_layers are given                            transformer.py
    arch.name=sa-lstm      SequencePretrainedLSTM(kind="sa"): the plain LSTM of model.*          pretrained_lstm.py
    arch.name=lm-lstm      SequencePretrainedLSTM(kind="lm")                                     pretrained_lstm.py

A run calls `check(model, arch)` before any work and `build(model, arch)` once, so that a resumed or
evaluated run rebuilds exactly the architecture its config.yaml describes; eval, predict and auxrnn.load
use `build_trained(model, arch, state)`, which needs no auxiliary head. `build_model(name, cfg)` and
`model_config(name, cfg)` are the library's registry: from a config object or a dict of its fields.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from auxrnn.models.architectures import arch_spec
from auxrnn.models.auxrnn import AuxRNN
from auxrnn.models.config import ARCHS, REAL_INPUTS, ArchConfig, ModelConfig
from auxrnn.models.objectives import objective_classes, unavailable


def resolve(model: ModelConfig, arch: ArchConfig) -> Any:
    """The config the run's module is built from (validated): e.g. the Transformer's size is searched here."""
    return arch_spec(arch.validate().name).resolve(model, arch)


def check(model: ModelConfig, arch: ArchConfig, info=None) -> Any:
    """Refuse what `build` would refuse, without building (e.g. no Transformer within 10% of the r-LSTM).

    info: the auxrnn.data.DatasetInfo the run fits (its name goes into the error; its longest sequence
    must hold each objective's subsequence), or only the dataset's name, or None. Returns the resolved config.
    """
    name = info if isinstance(info, str) else getattr(info, "name", None)
    builds_objectives = arch.name in ARCHS and ARCHS[arch.name].objectives
    try:
        # A misspelled objective is refused as such, before what real-valued data needs of the objectives.
        classes = objective_classes(model) if builds_objectives else ()
    except ValueError as exc:
        raise ValueError(f"{exc} (dataset {name!r})" if name else str(exc)) from None
    real = builds_objectives and all(cls.real_valued for cls in classes)
    if 0 in tuple(model.channels) and (model.encoder != "linear" or not real):
        raise ValueError(f"dataset {name!r} {REAL_INPUTS}")
    try:
        resolved = resolve(model, arch)
    except ValueError as exc:
        raise ValueError(f"{exc} (dataset {name!r})" if name else str(exc)) from None
    if hasattr(info, "seq_len") and classes:
        T = int(info.seq_len)
        room = min(cls.longest(T) for cls in classes)
        if model.subseq_len > room:
            raise ValueError(f"model.subseq_len={model.subseq_len} is longer than the sequences of {name!r} "
                             f"(length {T}{', at most' if info.variable_length else ''}): the auxiliary "
                             f"subsequence must fit, so choose model.subseq_len <= {room}")
    return resolved


def build(model: ModelConfig, arch: ArchConfig) -> nn.Module:
    """The run's model, on CPU, freshly initialised from the global torch RNG."""
    return arch_spec(arch.name).build(resolve(model, arch))


def build_trained(model: ModelConfig, arch: ArchConfig, state: Mapping[str, torch.Tensor]) -> tuple[nn.Module, str]:
    """The run's model with a checkpoint's weights `state`, for scoring and prediction; also a note ("" if none).

    The classifier reads the encoder, the core and the head only. An objective of model.aux whose class
    cannot be imported here (its package is not installed) is left out with its head's weights, and the
    note says so; every other weight must load.
    """
    missing = unavailable(model.objective_names) if arch.name in ARCHS and ARCHS[arch.name].objectives else {}
    if not missing:
        module = build(model, arch)
        module.load_state_dict(state)
        return module, ""
    module = AuxRNN(model, without=tuple(missing))
    result = module.load_state_dict(state, strict=False)
    main = tuple(f"{m}." for m in ("encoder", "core", "classifier"))
    stray = [k for k in result.unexpected_keys if k.startswith(main)]
    if result.missing_keys or stray:
        raise RuntimeError(f"the checkpoint does not fit the model model.* describes: missing {result.missing_keys}, "
                           f"unexpected {stray}")
    reasons = "; ".join(missing.values())
    note = (f"note: left out the auxiliary head of {', '.join(missing)} ({len(result.unexpected_keys)} saved tensors "
            f"not loaded), which scoring does not use: {reasons}")
    return module, note


def parameter_text(module: nn.Module, model: ModelConfig, arch: ArchConfig) -> str:
    """One log line: the built module's parameter counts (an architecture may say more, e.g. the Transformer)."""
    describe = arch_spec(arch.name).describe
    if describe is not None:
        return describe(module, model, arch)
    n = module.num_parameters()
    return f"{arch.name}: {n['total']:,} parameters (main {n['main']:,} + auxiliary {n['auxiliary']:,})"


def can_pretrain(model: nn.Module) -> bool:
    """Whether phase "pretrain" has a loss for this model: a pretraining head, or auxiliary objectives."""
    return hasattr(model, "pretrainer") or bool(getattr(model, "objectives", None))


def model_config(arch: str, cfg: Any = None) -> Any:
    """The config `build_model(arch, ...)` uses, from a config object, a dict of fields, or None (defaults).

    rnn:        ModelConfig.
    transformer: a TransformerConfig as given; from a ModelConfig (or a dict with ModelConfig fields), the
                matched Transformer, with the dict's TransformerConfig fields as overrides.
    sa-lstm, lm-lstm: PretrainedLSTMConfig with kind from the arch; a ModelConfig's or dict's `aux` is
                dropped (the arch decides the pretraining loss).
    """
    return arch_spec(arch).config(cfg)


def build_model(arch: str, cfg: Any = None) -> nn.Module:
    """Any registered model by name: "rnn" (LSTM / r-LSTM / p-LSTM), "transformer", "sa-lstm", "lm-lstm", ...

    `cfg`: a config object or a dict of its fields (see model_config). The module's `.cfg.to_dict()`
    describes it.
    """
    return arch_spec(arch).build(model_config(arch, cfg))
