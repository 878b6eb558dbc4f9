"""AuxRNN: the paper's (r-/p-)LSTM described by a ModelConfig (model.*), an AuxModel built from config.

    encoder   Encoder(model.channels, model.embed_dim, model.encoder)
    core      1-layer model.cell of model.hidden units
    head      FFN (model.ffn_hidden x 2) to model.n_classes
    objectives  one per name of model.aux ("both" = reconstruct + predict), each `build_objective(cls, cfg)`
"""
from __future__ import annotations

import torch

from auxrnn.core.encoders import Encoder
from auxrnn.core.heads import feed_forward
from auxrnn.core.model import AuxModel, StepOutput, count_parameters
from auxrnn.core.recurrent import Recurrent
from auxrnn.models.architectures import register_arch, split_fields
from auxrnn.models.config import ArchConfig, ModelConfig
from auxrnn.models.objectives import build_objective, objective_classes

__all__ = ["AuxRNN", "StepOutput", "count_parameters", "rnn_parameters"]


class AuxRNN(AuxModel):
    """Main recurrent classifier plus the auxiliary objectives model.aux names.

    without: names of model.aux not to build (scoring a run whose objective's package is not installed
    here: the classifier needs no auxiliary head; see auxrnn.models.registry.build_trained).
    """

    def __init__(self, cfg: ModelConfig, without: tuple[str, ...] = ()):
        cfg = cfg.validate()
        objectives = [build_objective(cls, cfg) for cls in objective_classes(cfg, without)]
        encoder = Encoder(cfg.channels, cfg.embed_dim, cfg.encoder)
        core = Recurrent(cfg.cell, cfg.embed_dim, cfg.hidden, cfg.forget_bias)
        head = feed_forward(cfg.hidden, cfg.ffn_hidden, cfg.n_classes, cfg.dropout)
        super().__init__(encoder, core, head, objectives, truncate=cfg.truncate, chunk=cfg.chunk)
        self.cfg = cfg


def rnn_parameters(cfg: ModelConfig) -> dict[str, int]:
    """AuxRNN(cfg).num_parameters() without drawing a random number or allocating the weights.

    For sizes needed without the module (the Transformer matched to an r-LSTM): a real build would cost
    time and shift the random stream that a resumed run must replay exactly; on the meta device inside a
    forked RNG it does neither.
    """
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        return AuxRNN(cfg).num_parameters()


def rnn_library_config(cfg=None) -> ModelConfig:
    """build_model("rnn", cfg): a ModelConfig as given, or one from a dict of its fields (a "kind" is dropped)."""
    if type(cfg) is ModelConfig:
        return cfg
    d = cfg.to_dict() if isinstance(cfg, ModelConfig) else dict(cfg or {})
    d.pop("kind", None)
    known, extra = split_fields(d, ModelConfig)
    if extra:
        raise ValueError(f"unknown model option(s) {sorted(extra)} for arch 'rnn'")
    return ModelConfig(**known)


@register_arch("rnn", build=AuxRNN, config=rnn_library_config)
def rnn_config(model: ModelConfig, arch: ArchConfig) -> ModelConfig:
    """arch.name=rnn: the (r-/p-)LSTM that model.* describes; its objectives are checked when it is built."""
    return model.validate()
