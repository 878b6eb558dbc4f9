"""SA-LSTM and LM-LSTM (Dai & Le 2015): the plain LSTM classifier with a sequence-pretraining phase.

    kind "sa"  SA-LSTM: pretrain as a sequence autoencoder (the r-LSTM decoder, one anchor at the end).
    kind "lm"  LM-LSTM: pretrain as a next-element model (truncated BPTT windows of aux_truncate steps).

Both fine-tune exactly like the plain LSTM (AuxRNN with aux="none"). docs/baselines.md lists the choices
(decisions B9-B14).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from functools import partial
from typing import Mapping

import torch
from torch import nn

from auxrnn.core.heads import token_nll
from auxrnn.core.inputs import check_batch
from auxrnn.core.objectives import OBJECTIVES
from auxrnn.core.objectives.reconstruct import Reconstruct, reconstruct_targets, reconstruct_windows
from auxrnn.core.recurrent import run_window, scan
from auxrnn.core.windows import Windows
from auxrnn.models.architectures import register_arch, split_fields
from auxrnn.models.auxrnn import AuxRNN, StepOutput, count_parameters
from auxrnn.models.config import PHASES, ArchConfig, ModelConfig
from auxrnn.models.objectives import build_objective

PRETRAIN_KINDS = ("sa", "lm")


@dataclass
class PretrainedLSTMConfig(ModelConfig):
    """ModelConfig of the plain LSTM plus the kind of pretraining.

    kind "sa": the decoder is the r-LSTM's (aux_hidden x aux_layers LSTM + FFN) and rebuilds the last
    subseq_len elements from the final state; the main gradient stops aux_truncate steps before the end
    (decisions B9, B10). kind "lm": a linear softmax on the main outputs predicts the next element; truncated
    BPTT in consecutive windows of aux_truncate steps (decisions B11, B12). Fine-tuning uses truncate like the
    plain LSTM (decision B13).
    """

    aux: str = "none"   # the pretraining head replaces the r-/p-LSTM heads
    kind: str = "sa"    # "sa" | "lm"

    def validate(self) -> "PretrainedLSTMConfig":
        super().validate()
        if self.aux != "none":
            raise ValueError(f"aux={self.aux!r} is invalid for SA-/LM-LSTM: use 'none' (the pretraining head is "
                             "chosen by kind, which arch.name=sa-lstm or lm-lstm sets)")
        if self.kind not in PRETRAIN_KINDS:
            raise ValueError(f"kind={self.kind!r} is invalid: choose one of {PRETRAIN_KINDS} (arch.name=sa-lstm or "
                             "lm-lstm)")
        return self

    @classmethod
    def of(cls, model: ModelConfig, kind: str) -> "PretrainedLSTMConfig":
        """The plain LSTM that `model` describes, with the `kind` of pretraining (model.aux is dropped)."""
        d = {f.name: getattr(model, f.name) for f in fields(ModelConfig) if f.name != "aux"}
        return cls(**d, kind=kind)


def lm_windows(lengths: torch.Tensor, width: int) -> Windows:
    """Consecutive windows of `width` steps over the inputs that have a successor, x[0 : len-1] (decision B12).

    Window r starts at a multiple of `width`; its outputs after consuming x[s+j] predict x[s+j+1].
    lengths: (B,) CPU int64 -> Windows with rows, start, width (R,) int64.
    """
    if width < 1:
        raise ValueError(f"window width must be >= 1, got {width}")
    inputs = (lengths.long().cpu() - 1).clamp(min=0)
    n = torch.div(inputs + width - 1, width, rounding_mode="floor")  # windows per row
    rows = torch.arange(lengths.shape[0]).repeat_interleave(n)
    first = torch.cumsum(n, 0) - n  # index of each row's first window
    k = torch.arange(rows.numel()) - first[rows]
    start = k * width
    return Windows(rows, start, torch.clamp(inputs[rows] - start, max=width))


def _aligned_chunk(width: int, chunk: int) -> int | None:
    """The largest divisor of `width` that is <= chunk, so that every window start sits on a chunk boundary
    and the no-grad read never has to catch up; None when that divisor would be small (< chunk / 2)."""
    best = max(d for d in range(1, min(width, chunk) + 1) if width % d == 0)
    return best if best * 2 >= min(width, chunk) else None


class SequencePretrainedLSTM(AuxRNN):
    """The plain LSTM classifier (AuxRNN, aux="none") with a sequence-autoencoder or language-model pretraining head.

    phase "pretrain": the pretraining loss alone (mean NLL per scored token); phase "train": the supervised
    loss alone, with AuxRNN's truncation (aux_weight is ignored, as in Dai & Le's fine-tuning: decision B13).
    """

    def __init__(self, cfg: PretrainedLSTMConfig):
        if not isinstance(cfg, PretrainedLSTMConfig):
            raise TypeError("SequencePretrainedLSTM needs a PretrainedLSTMConfig (see PretrainedLSTMConfig.of)")
        super().__init__(cfg)  # AuxRNN validates it (PretrainedLSTMConfig.validate)
        if cfg.kind == "sa":  # decision B9: the r-LSTM decoder
            decoder = build_objective(Reconstruct.name, cfg)
            decoder.bind(self.core)
            self.pretrainer = decoder
        else:  # decision B11: one linear softmax, no auxiliary LSTM
            self.pretrainer = nn.Linear(cfg.hidden, sum(cfg.channels))

    def forward(self, x, lengths, y=None, *, generator=None, phase="train", aux_weight=1.0, anchors=None) -> StepOutput:
        """AuxRNN's interface; phase "pretrain" is the pretraining loss alone, anchors are unused."""
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
        if phase == "train":  # decision B13: supervised loss only (aux="none", so aux_weight has no effect)
            return super().forward(x, lengths, y, generator=generator, phase="train", aux_weight=aux_weight)
        x, lengths = check_batch(x, lengths)  # (B, T, C), (B,)
        nll, count = self._autoencoder_loss(x, lengths) if self.cfg.kind == "sa" else self._lm_loss(x, lengths)
        loss = nll / max(count, 1)
        return StepOutput(loss=loss, aux_loss=loss, aux_tokens=count)

    def _autoencoder_loss(self, x: torch.Tensor, lengths: torch.Tensor):
        """Rebuild the last min(len, subseq_len) elements from the final state; main BPTT of aux_truncate steps.

        Decision B10.
        """
        cfg = self.cfg
        ends = lengths.unsqueeze(1)  # (B, 1): one "anchor" at each sequence's end
        w = reconstruct_windows(ends, cfg.aux_truncate)
        start = scan(self.core, self.encoder, x, w.rows, w.start, self.read_chunk(x, w.rows.numel()))  # each (B, H)
        _, end = run_window(self.core, self.encoder, x, w, start)  # the state at each end, each (B, H)
        positions, mask = reconstruct_targets(ends, cfg.subseq_len)  # (B, L), (B, L-1)
        tokens = x[w.rows.to(x.device).unsqueeze(1), positions.to(x.device)]  # (B, L, C)
        return self.pretrainer.decode(self.core.flatten(end), tokens, mask)

    def _lm_loss(self, x: torch.Tensor, lengths: torch.Tensor):
        """Next-element NLL over every window of aux_truncate steps, all windows in one batched call."""
        cfg = self.cfg
        w = lm_windows(lengths, cfg.aux_truncate)
        if w.rows.numel() == 0:  # every sequence has one element: nothing to predict
            return self.pretrainer.weight.sum() * 0.0, 0
        chunk = _aligned_chunk(cfg.aux_truncate, cfg.chunk) or self.read_chunk(x, w.rows.numel())
        start = scan(self.core, self.encoder, x, w.rows, w.start, chunk)
        out, _ = run_window(self.core, self.encoder, x, w, start)  # (R, W, H)
        W = out.shape[1]
        j = torch.arange(W).unsqueeze(0)  # (1, W)
        mask = j < w.width.unsqueeze(1)  # (R, W)
        positions = torch.clamp(w.start.unsqueeze(1) + 1 + j, max=x.shape[1] - 1)  # (R, W): the next elements
        targets = x[w.rows.to(x.device).unsqueeze(1), positions.to(x.device)]  # (R, W, C)
        return token_nll(self.pretrainer(out), targets, mask, cfg.channels)

    def all_parameters_used(self, phase: str) -> bool:
        """Never: pretraining leaves the classifier out, fine-tuning the pretraining head."""
        return False

    def num_parameters(self) -> dict[str, int]:
        """The plain LSTM's main network; the pretraining head counts as auxiliary."""
        n = super().num_parameters()
        aux = n["auxiliary"] + count_parameters(self.pretrainer)
        return {"main": n["main"], "auxiliary": aux, "total": n["main"] + aux}


SHARED_PREFIXES = ("encoder.", "core.")
HEAD_PREFIXES = ("pretrainer.", *(f"{cls.attr}." for cls in OBJECTIVES.values()))  # every objective's head


def transfer_pretrained(src_state_dict: Mapping[str, torch.Tensor], model: nn.Module) -> list[str]:
    """Load a pretraining state dict into a (fine-tuning) model; returns the loaded keys, sorted (decision B14).

    Strict on the shared parts: every `encoder.*` and `core.*` tensor of `model` must be in the source with
    the same shape. Pretraining and objective heads (`pretrainer.`, `reconstructor.`, `predictor.`, ...) are copied where both
    have them with equal shapes; the classifier is never copied (pretraining leaves it untrained).
    "module." (DDP) and "_orig_mod." (torch.compile) prefixes of the source are dropped.
    """
    src = {}
    for k, v in src_state_dict.items():
        for p in ("module.", "_orig_mod."):
            k = k[len(p):] if k.startswith(p) else k
        src[k] = v
    own = model.state_dict()
    shared = [k for k in own if k.startswith(SHARED_PREFIXES)]
    missing = [k for k in shared if k not in src]
    mismatched = [f"{k}: {tuple(src[k].shape)} vs {tuple(own[k].shape)}" for k in shared
                  if k in src and src[k].shape != own[k].shape]
    if missing or mismatched:
        raise ValueError(f"pretrained state does not fit the model's encoder/core: missing {missing}, "
                         f"shape mismatch {mismatched}")
    heads = [k for k in own if k.startswith(HEAD_PREFIXES) and k in src and src[k].shape == own[k].shape]
    keys = sorted(shared + heads)
    result = model.load_state_dict({k: src[k] for k in keys}, strict=False)
    assert not result.unexpected_keys, result.unexpected_keys
    return keys


def pretrained_library_config(kind: str, cfg=None) -> PretrainedLSTMConfig:
    """build_model("sa-lstm" / "lm-lstm", cfg): a PretrainedLSTMConfig of that kind; a ModelConfig's or dict's
    `aux` is dropped (the architecture decides the pretraining loss)."""
    name = f"{kind}-lstm"
    if isinstance(cfg, PretrainedLSTMConfig):
        if cfg.kind != kind:
            raise ValueError(f"kind={cfg.kind!r} contradicts arch {name!r}, whose kind is {kind!r}")
        return cfg
    d = cfg.to_dict() if isinstance(cfg, ModelConfig) else dict(cfg or {})
    if d.get("kind", kind) != kind:
        raise ValueError(f"kind={d['kind']!r} contradicts arch {name!r}, whose kind is {kind!r}")
    d.pop("aux", None)
    known, extra = split_fields({**d, "kind": kind}, PretrainedLSTMConfig)
    if extra:
        raise ValueError(f"unknown model option(s) {sorted(extra)} for arch {name!r}")
    return PretrainedLSTMConfig(**known)


def pretrained_parameter_text(module: SequencePretrainedLSTM, model: ModelConfig, arch: ArchConfig) -> str:
    """The plain LSTM's count and its pretraining head's."""
    n = module.num_parameters()
    return f"{arch.name}: {n['total']:,} parameters (main {n['main']:,} + pretraining {n['auxiliary']:,})"


@register_arch("sa-lstm", build=SequencePretrainedLSTM, config=partial(pretrained_library_config, "sa"),
               describe=pretrained_parameter_text)
def sa_lstm_config(model: ModelConfig, arch: ArchConfig) -> PretrainedLSTMConfig:
    """arch.name=sa-lstm: the plain LSTM of model.* with a sequence-autoencoder pretraining head."""
    return PretrainedLSTMConfig.of(model, "sa").validate()


@register_arch("lm-lstm", build=SequencePretrainedLSTM, config=partial(pretrained_library_config, "lm"),
               describe=pretrained_parameter_text)
def lm_lstm_config(model: ModelConfig, arch: ArchConfig) -> PretrainedLSTMConfig:
    """arch.name=lm-lstm: the plain LSTM of model.* with a language-model pretraining head."""
    return PretrainedLSTMConfig.of(model, "lm").validate()
