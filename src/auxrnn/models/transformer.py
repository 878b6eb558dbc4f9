"""The "comparable sized Transformer" of the paper (§2, Table 2, Fig. 3): a pre-LN encoder classifier.

tokens -> auxrnn Encoder (+ positions) -> pre-LN layers -> LayerNorm -> readout -> the LSTM's 2-layer FFN head.
Supervised loss only (no pretraining phase). Unless its size is given, `matched_transformer_config` picks
the width and depth whose parameter count is closest to the r-LSTM's (within 10%). docs/baselines.md;
decisions B1-B7.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from auxrnn.core.encoders import Encoder
from auxrnn.core.heads import feed_forward
from auxrnn.core.inputs import check_batch
from auxrnn.models.architectures import register_arch, split_fields
from auxrnn.models.auxrnn import StepOutput, count_parameters, rnn_parameters
from auxrnn.models.config import (ENCODERS, PHASES, POSITIONS, READOUTS, TRANSFORMER_READS, ArchConfig, ModelConfig,
                                  bad_value, check_fields, config_dict)


# The run-config keys of the TransformerConfig fields that arch.* sets (the rest are model.*'s; d_ff is 4 d_model).
RUN_KEYS = {"d_model": "arch.d_model", "n_layers": "arch.n_layers", "n_heads": "arch.n_heads",
            "positions": "arch.positions", "readout": "arch.readout", "max_len": "arch.max_len",
            "d_ff": "TransformerConfig.d_ff"}


@dataclass
class TransformerConfig:
    """A pre-LayerNorm Transformer encoder classifier (decision B2). Sizes default to the MNIST pick (decision B1)."""

    channels: tuple[int, ...] = (256,)
    n_classes: int = 10
    d_model: int = 128
    n_layers: int = 7
    n_heads: int = 4                # decision B1
    d_ff: int = 512                 # decision B1: 4 d_model
    dropout: float = 0.0            # as ModelConfig.dropout (matched configs inherit it): decision B5
    positions: str = "sinusoidal"   # "learned" (a max_len x d_model table) | "sinusoidal" (no parameters): decision B3
    readout: str = "mean"           # "mean" over real elements | "cls" (a learned token prepended): decision B4
    max_len: int = 1024             # longest sequence for learned positions (unused by sinusoidal)
    encoder: str = "embedding"      # input encoder kind, as ModelConfig.encoder
    ffn_hidden: int = 256           # classifier head: the same 2-layer FFN as the LSTM's (decision B2)
    checkpoint: bool = False        # recompute each layer in backward (activation memory ~1 layer instead of n_layers)

    def __post_init__(self):
        self.channels = tuple(int(c) for c in self.channels)

    def validate(self) -> "TransformerConfig":
        """Refusals name the run-config key of each field (arch.d_model, model.ffn_hidden, ...)."""
        check_fields(self, {"positions": POSITIONS, "readout": READOUTS, "encoder": ENCODERS},
                     ("n_classes", "d_model", "n_layers", "n_heads", "d_ff", "max_len", "ffn_hidden"), RUN_KEYS)
        if self.d_model % self.n_heads:
            raise bad_value("arch.d_model", self.d_model, f"must be a multiple of arch.n_heads={self.n_heads}")
        return self

    def to_dict(self) -> dict:
        return config_dict(self)


def sinusoidal_positions(T: int, dim: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(T, dim) sine/cosine position codes of Vaswani et al. (2017); odd dim drops the last cosine."""
    pos = torch.arange(T, device=device, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(T, dim, device=device, dtype=torch.float32)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return pe.to(dtype)


class SelfAttention(nn.Module):
    """Multi-head self-attention through F.scaled_dot_product_attention (flash / memory-efficient on CUDA)."""

    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads, self.dropout = n_heads, dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """h: (B, T, d); mask: (B, 1, 1, T) bool, True for keys that take part, or None (all do)."""
        B, T, d = h.shape
        qkv = self.qkv(h).view(B, T, 3, self.n_heads, d // self.n_heads)  # (B, T, 3, nh, hs)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, nh, T, hs)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.out(a.transpose(1, 2).reshape(B, T, d))  # (B, nh, T, hs) -> (B, T, d)


class TransformerLayer(nn.Module):
    """Pre-LN block: h + Attn(LN(h)), then h + FFN(LN(h)) with GELU (decision B2); dropout as decision B5."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, n_heads, dropout)
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Dropout(dropout), nn.Linear(d_ff, d_model))
        self.drop = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """h: (B, T, d) -> (B, T, d)."""
        h = h + self.drop(self.attn(self.ln1(h), mask))
        return h + self.drop(self.ff(self.ln2(h)))


class TransformerClassifier(nn.Module):
    """Tokens -> auxrnn Encoder (+ positions) -> pre-LN Transformer layers -> LN -> readout -> 2-layer FFN."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg.validate()
        self.encoder = Encoder(cfg.channels, cfg.d_model, cfg.encoder)
        self.positions = None
        if cfg.positions == "learned":
            self.positions = nn.Parameter(torch.randn(cfg.max_len, cfg.d_model) * 0.02)
        self.cls = nn.Parameter(torch.randn(cfg.d_model) * 0.02) if cfg.readout == "cls" else None
        self.drop = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(TransformerLayer(cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.dropout)
                                    for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(cfg.d_model)  # decision B2: final LayerNorm
        self.classifier = feed_forward(cfg.d_model, cfg.ffn_hidden, cfg.n_classes, cfg.dropout)  # decision B2

    def logits(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Class logits (B, n_classes) with autograd. x: (B, T[, C]) tokens; lengths: (B,).

        T' below is T, or 1 + T with the CLS token in front.
        """
        cfg = self.cfg
        x, lengths = check_batch(x, lengths)  # (B, T, C), (B,)
        B, T, _ = x.shape
        h = self.encoder(x)  # (B, T, d)
        if cfg.positions == "learned":
            if T > cfg.max_len:
                raise ValueError(f"sequence length T={T} exceeds arch.max_len={cfg.max_len} of the learned positions")
            h = h + self.positions[:T].to(h.dtype)  # (B, T, d)
        else:  # decision B3: sinusoidal by default
            h = h + sinusoidal_positions(T, cfg.d_model, h.device, h.dtype)  # (B, T, d)
        lengths_dev = lengths.to(h.device)
        real = torch.arange(T, device=h.device).unsqueeze(0) < lengths_dev.unsqueeze(1)  # (B, T)
        if self.cls is not None:
            h = torch.cat([self.cls.to(h.dtype).expand(B, 1, -1), h], dim=1)  # (B, 1 + T, d)
            real = torch.cat([real.new_ones(B, 1), real], dim=1)  # (B, 1 + T)
        # A mask only when some sequence is padded: without one, CUDA can use the flash kernel (decision B6).
        mask = None if bool((lengths == T).all()) else real[:, None, None, :]  # (B, 1, 1, T')
        h = self.drop(h)  # (B, T', d)
        recompute = cfg.checkpoint and torch.is_grad_enabled() and h.requires_grad
        for layer in self.layers:
            h = checkpoint(layer, h, mask, use_reentrant=False) if recompute else layer(h, mask)
        h = self.norm(h)  # (B, T', d)
        if cfg.readout == "cls":
            pooled = h[:, 0]  # (B, d)
        else:  # decision B4: mean by default
            w = real.to(h.dtype).unsqueeze(-1)  # (B, T, 1)
            pooled = (h * w).sum(1) / lengths_dev.to(h.dtype).unsqueeze(1)  # (B, d): mean over real elements
        return self.classifier(pooled)  # (B, n_classes)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Class logits (B, n_classes), no grad."""
        return self.logits(x, lengths)

    def forward(self, x, lengths, y=None, *, generator=None, phase="train", aux_weight=1.0, anchors=None) -> StepOutput:
        """Supervised loss only: generator, aux_weight and anchors are accepted for the interface and unused."""
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
        if phase == "pretrain":  # decision B7
            raise ValueError("the Transformer baseline has no auxiliary loss, so no 'pretrain' phase; "
                             "set train.pretrain_steps and train.pretrain_epochs to 0 for arch.name=transformer")
        if y is None:
            raise ValueError("phase 'train' needs labels y")
        logits = self.logits(x, lengths)
        loss = F.cross_entropy(logits, y.to(logits.device).long())
        return StepOutput(loss=loss, sup_loss=loss, logits=logits.detach())

    def all_parameters_used(self, phase: str) -> bool:
        """Every step trains every parameter (there is only the supervised phase)."""
        return True

    def num_parameters(self) -> dict[str, int]:
        """All parameters are the main network's: no auxiliary head."""
        total = count_parameters(self)
        return {"main": total, "auxiliary": 0, "total": total}


def transformer_parameters(cfg: TransformerConfig) -> int:
    """Exact parameter count of TransformerClassifier(cfg), by formula (tests check it against the module)."""
    d, f, h = cfg.d_model, cfg.d_ff, cfg.ffn_hidden
    enc = sum(cfg.channels) * d if cfg.encoder == "embedding" else len(cfg.channels) * d + d
    pos = cfg.max_len * d if cfg.positions == "learned" else 0
    cls = d if cfg.readout == "cls" else 0
    layer = 4 * d * d + 2 * d * f + f + 9 * d  # qkv + out + FFN + two LayerNorms
    head = 2 * d + (d * h + h) + (h * h + h) + (h * cfg.n_classes + cfg.n_classes)  # final LN + FFN
    return enc + pos + cls + cfg.n_layers * layer + head


MATCH_TOLERANCE = 0.10
_D_MODELS = tuple(range(64, 513, 32))   # decision B1; 4 heads: head widths 16..128, multiples of 8 (flash kernels)
_N_LAYERS = tuple(range(1, 13))         # decision B1


def matched_transformer_config(rnn_cfg: ModelConfig, **overrides) -> TransformerConfig:
    """A Transformer whose parameter count is within 10% of the r-LSTM's total (main + auxiliary heads; decision B1).

    channels, n_classes, encoder, ffn_hidden and dropout come from `rnn_cfg`; `overrides` set any TransformerConfig
    field. Unless overridden, d_model (multiples of 32 in 64..512, d_ff = 4 d_model unless d_ff is given)
    and n_layers (1..12) are searched for the count closest to the target (ties: the narrower model).
    Raises if that is off by more than 10%, unless both d_model and n_layers were given.
    """
    target = rnn_parameters(rnn_cfg)["total"]
    unknown = set(overrides) - {f.name for f in fields(TransformerConfig)}
    if unknown:
        raise ValueError(f"unknown Transformer option(s) {sorted(unknown)}")
    base = dict(channels=rnn_cfg.channels, n_classes=rnn_cfg.n_classes, encoder=rnn_cfg.encoder,
                ffn_hidden=rnn_cfg.ffn_hidden, dropout=rnn_cfg.dropout)
    base.update(overrides)
    d_models = [base["d_model"]] if "d_model" in overrides else _D_MODELS
    layers = [base["n_layers"]] if "n_layers" in overrides else _N_LAYERS
    heads = base.get("n_heads", TransformerConfig.n_heads)
    candidates = []
    for d in d_models:
        if d % heads:
            continue
        for n in layers:
            cfg = TransformerConfig(**{**base, "d_model": d, "n_layers": n, "d_ff": overrides.get("d_ff", 4 * d)})
            candidates.append((abs(transformer_parameters(cfg) - target) / target, d, n, cfg))
    if not candidates:
        raise ValueError(f"no d_model among {list(d_models)} is a multiple of n_heads={heads}")
    err, _, _, best = min(candidates, key=lambda c: c[:3])
    if err > MATCH_TOLERANCE and not {"d_model", "n_layers"} <= set(overrides):
        raise ValueError(f"no Transformer within {MATCH_TOLERANCE:.0%} of the r-LSTM's {target} parameters "
                         f"with overrides {overrides}; the closest has {transformer_parameters(best)}")
    return best.validate()


def parameter_report(rnn_cfg: ModelConfig, tf_cfg: TransformerConfig | None = None,
                     tf_total: int | None = None) -> dict:
    """Both parameter counts (the training log prints `report["text"]`), neither by building a module.

    tf_cfg: the Transformer (default: the one matched to rnn_cfg); tf_total: its count when a built
    instance already knows it (default: transformer_parameters(tf_cfg)). The r-LSTM's is rnn_parameters.
    """
    tf_cfg = tf_cfg or matched_transformer_config(rnn_cfg)
    rnn = rnn_parameters(rnn_cfg)
    tf = transformer_parameters(tf_cfg) if tf_total is None else tf_total
    ratio = tf / rnn["total"]
    text = (f"r-LSTM ({rnn_cfg.cell}-{rnn_cfg.hidden}, aux={rnn_cfg.aux}): {rnn['total']:,} parameters "
            f"(main {rnn['main']:,} + auxiliary {rnn['auxiliary']:,}); "
            f"Transformer (d_model={tf_cfg.d_model}, layers={tf_cfg.n_layers}, heads={tf_cfg.n_heads}, "
            f"d_ff={tf_cfg.d_ff}, positions={tf_cfg.positions}): {tf:,} parameters ({ratio - 1:+.1%})")
    return {"rnn_main": rnn["main"], "rnn_auxiliary": rnn["auxiliary"], "rnn_total": rnn["total"],
            "transformer": tf, "ratio": ratio, "within_10pct": abs(ratio - 1) <= MATCH_TOLERANCE, "text": text}


def transformer_library_config(cfg=None) -> TransformerConfig:
    """build_model("transformer", cfg): a TransformerConfig as given; from a ModelConfig (or a dict with its
    fields), the matched Transformer, with the dict's TransformerConfig fields as overrides."""
    if isinstance(cfg, TransformerConfig):
        return cfg
    if isinstance(cfg, ModelConfig):
        return matched_transformer_config(cfg)
    d = dict(cfg or {})
    tf, rest = split_fields(d, TransformerConfig)
    rnn, extra = split_fields(rest, ModelConfig)
    if extra:
        raise ValueError(f"unknown model option(s) {sorted(extra)} for arch 'transformer'")
    shared = {k: d[k] for k in ("channels", "n_classes", "encoder", "ffn_hidden", "dropout") if k in d}
    return matched_transformer_config(ModelConfig(**{**rnn, **shared}), **tf)


def transformer_parameter_text(module: TransformerClassifier, model: ModelConfig, arch: ArchConfig) -> str:
    """Both counts, the Transformer's and the r-LSTM's of model.* it is matched to, and which model.* it reads."""
    counts = parameter_report(model, module.cfg, module.num_parameters()["total"])["text"]
    return f"{counts}. It reads {TRANSFORMER_READS}"


@register_arch("transformer", build=TransformerClassifier, config=transformer_library_config,
               describe=transformer_parameter_text)
def transformer_config(model: ModelConfig, arch: ArchConfig) -> TransformerConfig:
    """arch.name=transformer: arch.* fixes what it gives; the rest is matched to the r-LSTM of model.*."""
    try:
        return matched_transformer_config(model, **arch.transformer_overrides())
    except ValueError as exc:
        raise ValueError(f"arch.name='transformer': {exc}; set both arch.d_model and arch.n_layers to choose "
                         "its size yourself, or describe the r-LSTM to match with model.*") from None
