"""The model of a run, built from its RunConfig: the one place that turns `arch.*` + `model.*` into a module.

    arch.name=rnn          AuxRNN(model.*)                       LSTM / r-LSTM / p-LSTM by model.aux
    arch.name=transformer  TransformerClassifier                 matched to the r-LSTM of model.* unless
                                                                 arch.d_model and arch.n_layers are given
    arch.name=sa-lstm      SequencePretrainedLSTM(kind="sa")     the plain LSTM of model.* (aux ignored)
    arch.name=lm-lstm      SequencePretrainedLSTM(kind="lm")

The training loop, `auxrnn eval` and anything else that needs a run's model call `build_run_model(cfg)`,
so a resumed or evaluated run rebuilds exactly the architecture its saved config.yaml describes.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import nn

if TYPE_CHECKING:  # pragma: no cover
    from auxrnn.train.config import RunConfig


def transformer_overrides(cfg: "RunConfig") -> dict[str, Any]:
    """The TransformerConfig fields that arch.* fixes (d_model / n_layers only when > 0)."""
    a = cfg.arch
    out: dict[str, Any] = dict(n_heads=a.n_heads, positions=a.positions, readout=a.readout, checkpoint=a.checkpoint)
    if a.d_model:
        out["d_model"] = a.d_model
    if a.n_layers:
        out["n_layers"] = a.n_layers
    if a.positions == "learned" and a.max_len:
        out["max_len"] = a.max_len
    return out


def arch_model_config(cfg: "RunConfig"):
    """The config object `auxrnn.baselines.build_model(cfg.arch.name, ...)` builds the run's model from."""
    from auxrnn.baselines import matched_transformer_config, model_config

    name = cfg.arch.name
    if name == "transformer":
        try:
            return matched_transformer_config(cfg.model, **transformer_overrides(cfg))
        except ValueError as exc:
            raise ValueError(f"arch.name='transformer': {exc}; set both arch.d_model and arch.n_layers to choose "
                             "its size yourself, or describe the r-LSTM to match with model.*") from None
    if name == "rnn":
        return model_config("rnn", cfg.model)
    return model_config(name, cfg.model.to_dict())


def build_run_model(cfg: "RunConfig") -> nn.Module:
    """The run's model (on CPU, freshly initialised from the global torch RNG)."""
    from auxrnn.baselines import build_model

    return build_model(cfg.arch.name, arch_model_config(cfg))


def parameter_text(cfg: "RunConfig", model: nn.Module) -> str:
    """One line for the log: the model's parameter counts; for the Transformer also the r-LSTM it is matched to."""
    if cfg.arch.name == "transformer":
        from auxrnn.baselines import parameter_report

        return parameter_report(cfg.model, model.cfg)["text"]
    n = model.num_parameters()
    return (f"{cfg.arch.name}: {n['total']:,} parameters (main {n['main']:,} + "
            f"{'pretraining' if cfg.arch.name in ('sa-lstm', 'lm-lstm') else 'auxiliary'} {n['auxiliary']:,})")
