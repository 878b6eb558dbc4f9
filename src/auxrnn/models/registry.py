"""From configs to modules: the one place that turns `model.*` + `arch.*` into a run's model.

    arch.name=rnn          AuxRNN(model.*)                       LSTM / r-LSTM / p-LSTM by model.aux
    arch.name=transformer  TransformerClassifier                 matched to the r-LSTM of model.* unless
                                                                 arch.d_model and arch.n_layers are given
    arch.name=sa-lstm      SequencePretrainedLSTM(kind="sa")     the plain LSTM of model.* (aux ignored)
    arch.name=lm-lstm      SequencePretrainedLSTM(kind="lm")

A run calls `check(model, arch)` before any work and `build(model, arch)` once, so that a resumed or
evaluated run rebuilds exactly the architecture its config.yaml describes; eval, predict and auxrnn.load
use `build_trained(model, arch, state)`, which needs no auxiliary head. `build_model(name, cfg)` and
`model_config(name, cfg)` are the library's registry: from a config object or a dict of its fields.
"""
from __future__ import annotations

from dataclasses import fields
from typing import Any, Mapping

import torch
from torch import nn

from auxrnn.core.model import AuxModel
from auxrnn.models.auxrnn import AuxRNN
from auxrnn.models.config import ARCHS, REAL_INPUTS, ArchConfig, ModelConfig
from auxrnn.models.objectives import objective_classes, unavailable
from auxrnn.models.pretrained_lstm import PretrainedLSTMConfig, SequencePretrainedLSTM
from auxrnn.models.transformer import (TransformerClassifier, TransformerConfig, matched_transformer_config,
                                       parameter_report)

_KIND = {"sa-lstm": "sa", "lm-lstm": "lm"}
AnyConfig = ModelConfig | TransformerConfig  # PretrainedLSTMConfig is a ModelConfig


def resolve(model: ModelConfig, arch: ArchConfig) -> AnyConfig:
    """The config the run's module is built from (validated): the Transformer's size is searched here."""
    arch.validate()
    if arch.name == "transformer":
        try:
            return matched_transformer_config(model, **arch.transformer_overrides())
        except ValueError as exc:
            raise ValueError(f"arch.name='transformer': {exc}; set both arch.d_model and arch.n_layers to choose "
                             "its size yourself, or describe the r-LSTM to match with model.*") from None
    if arch.name == "rnn":
        return model.validate()  # its objectives are checked by `check`, and by AuxRNN when built
    return PretrainedLSTMConfig.of(model, _KIND[arch.name]).validate()


def check(model: ModelConfig, arch: ArchConfig, info=None) -> AnyConfig:
    """Refuse what `build` would refuse, without building (e.g. no Transformer within 10% of the r-LSTM).

    info: the auxrnn.data.DatasetInfo the run fits (its name goes into the error; its longest sequence
    must hold each objective's subsequence), or only the dataset's name, or None. Returns the resolved config.
    """
    name = info if isinstance(info, str) else getattr(info, "name", None)
    try:
        # A misspelled objective is refused as such, before what real-valued data needs of the objectives.
        classes = objective_classes(model) if arch.name == "rnn" else ()
    except ValueError as exc:
        raise ValueError(f"{exc} (dataset {name!r})" if name else str(exc)) from None
    real = arch.name == "rnn" and all(cls.real_valued for cls in classes)
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
    return _construct(resolve(model, arch))


def build_trained(model: ModelConfig, arch: ArchConfig, state: Mapping[str, torch.Tensor]) -> tuple[nn.Module, str]:
    """The run's model with a checkpoint's weights `state`, for scoring and prediction; also a note ("" if none).

    The classifier reads the encoder, the core and the head only. An objective of model.aux whose class
    cannot be imported here (its package is not installed) is left out with its head's weights, and the
    note says so; every other weight must load.
    """
    missing = unavailable(model.objective_names) if arch.name == "rnn" else {}
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


def _construct(cfg: AnyConfig) -> nn.Module:
    if isinstance(cfg, TransformerConfig):
        return TransformerClassifier(cfg)
    if isinstance(cfg, PretrainedLSTMConfig):
        return SequencePretrainedLSTM(cfg)
    return AuxRNN(cfg)


def parameter_text(module: nn.Module, model: ModelConfig, arch: ArchConfig) -> str:
    """One log line: the built module's parameter counts; for the Transformer also the r-LSTM it is matched to."""
    n = module.num_parameters()
    if isinstance(module, TransformerClassifier):
        return parameter_report(model, module.cfg, n["total"])["text"]
    head = "pretraining" if isinstance(module, SequencePretrainedLSTM) else "auxiliary"
    return f"{arch.name}: {n['total']:,} parameters (main {n['main']:,} + {head} {n['auxiliary']:,})"


def can_pretrain(model: nn.Module) -> bool:
    """Whether phase "pretrain" has a loss for this model."""
    if isinstance(model, SequencePretrainedLSTM):
        return True
    return isinstance(model, AuxModel) and bool(model.objectives)


def _split(d: Mapping[str, Any], cls) -> tuple[dict, dict]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}, {k: v for k, v in d.items() if k not in names}


def model_config(arch: str, cfg: Any = None) -> AnyConfig:
    """The config `build_model(arch, ...)` uses, from a config object, a dict of fields, or None (defaults).

    rnn:        ModelConfig.
    transformer: a TransformerConfig as given; from a ModelConfig (or a dict with ModelConfig fields), the
                matched Transformer, with the dict's TransformerConfig fields as overrides.
    sa-lstm, lm-lstm: PretrainedLSTMConfig with kind from the arch; a ModelConfig's or dict's `aux` is
                dropped (the arch decides the pretraining loss).
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown model.arch {arch!r}; choose one of {ARCHS}")
    if cfg is None:
        cfg = {}
    if arch == "rnn":
        if isinstance(cfg, ModelConfig) and not isinstance(cfg, PretrainedLSTMConfig):
            return cfg
        d = cfg.to_dict() if isinstance(cfg, ModelConfig) else dict(cfg)
        d.pop("kind", None)
        known, extra = _split(d, ModelConfig)
        if extra:
            raise ValueError(f"unknown model option(s) {sorted(extra)} for arch 'rnn'")
        return ModelConfig(**known)
    if arch == "transformer":
        if isinstance(cfg, TransformerConfig):
            return cfg
        if isinstance(cfg, ModelConfig):
            return matched_transformer_config(cfg)
        d = dict(cfg)
        tf, rest = _split(d, TransformerConfig)
        rnn, extra = _split(rest, ModelConfig)
        if extra:
            raise ValueError(f"unknown model option(s) {sorted(extra)} for arch 'transformer'")
        shared = {k: d[k] for k in ("channels", "n_classes", "encoder", "ffn_hidden", "dropout") if k in d}
        return matched_transformer_config(ModelConfig(**{**rnn, **shared}), **tf)
    kind = _KIND[arch]
    if isinstance(cfg, PretrainedLSTMConfig):
        if cfg.kind != kind:
            raise ValueError(f"model.kind={cfg.kind!r} contradicts model.arch={arch!r}")
        return cfg
    d = cfg.to_dict() if isinstance(cfg, ModelConfig) else dict(cfg)
    if d.get("kind", kind) != kind:
        raise ValueError(f"model.kind={d['kind']!r} contradicts model.arch={arch!r}")
    d.pop("aux", None)
    known, extra = _split({**d, "kind": kind}, PretrainedLSTMConfig)
    if extra:
        raise ValueError(f"unknown model option(s) {sorted(extra)} for arch {arch!r}")
    return PretrainedLSTMConfig(**known)


def build_model(arch: str, cfg: Any = None) -> nn.Module:
    """Any model of the pipeline by name: "rnn" (LSTM / r-LSTM / p-LSTM), "transformer", "sa-lstm", "lm-lstm".

    `cfg`: a config object or a dict of its fields (see model_config). The module's `.cfg.to_dict()`
    describes it.
    """
    return _construct(model_config(arch, cfg))
