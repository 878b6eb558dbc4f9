"""Baselines of the paper on the same training pipeline: a Transformer, SA-LSTM and LM-LSTM.

Every model here implements the interface of `auxrnn.model.AuxRNN`:

    out = model(x, lengths, y, generator=g, phase="train" | "pretrain", aux_weight=1.0) -> StepOutput
    logits = model.predict(x, lengths)                  # no grad
    model.num_parameters() -> {"main", "auxiliary", "total"}
    model.cfg.to_dict()

    TransformerClassifier   "comparable sized Transformer" (paper §2, Table 2, Fig. 3); no pretraining phase.
    SequencePretrainedLSTM  kind "sa": SA-LSTM (Dai & Le 2015): pretrain as a sequence autoencoder.
                            kind "lm": LM-LSTM: pretrain as a next-element model (truncated BPTT windows).
                            Both fine-tune exactly like the plain LSTM (AuxRNN with aux="none").

`build_model(arch, cfg)` builds any of them (and the r-/p-LSTM) from a config; `run_guarded` and
`sweep_lengths` turn an out-of-memory at one sequence length into a result row instead of a crash.
Every choice the paper leaves open is listed in docs/baselines.md.
"""
from __future__ import annotations

import gc
import math
from dataclasses import dataclass, fields
from typing import Any, Callable, Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from auxrnn.core.encoders import ENCODERS, Encoder
from auxrnn.core.heads import Reconstructor, feed_forward, token_nll
from auxrnn.core.recurrent import run_window, scan
from auxrnn.core.windows import Windows, reconstruct_targets, reconstruct_windows
from auxrnn.model import PHASES, AuxRNN, ModelConfig, StepOutput, as_tokens, check_fields, config_dict

ARCHS = ("rnn", "transformer", "sa-lstm", "lm-lstm")
POSITIONS = ("learned", "sinusoidal")
READOUTS = ("mean", "cls")
PRETRAIN_KINDS = ("sa", "lm")


def _count(module: nn.Module | None) -> int:
    return sum(p.numel() for p in module.parameters()) if module is not None else 0


def _check_batch(x: torch.Tensor, lengths: torch.Tensor, channels: tuple[int, ...]):
    """Same checks as AuxRNN: integer tokens (B, T[, C]) and (B,) lengths in [1, T]. Lengths come back on CPU."""
    x = as_tokens(x)
    B, T, C = x.shape
    if C != len(channels):
        raise ValueError(f"inputs have {C} channels per step, the model expects {len(channels)}")
    lengths = lengths.long().cpu()
    if lengths.shape != (B,) or bool((lengths < 1).any()) or bool((lengths > T).any()):
        raise ValueError(f"lengths must be (B,)={B} values in [1, T={T}], got {lengths.tolist()[:8]}...")
    return x, lengths


# --------------------------------------------------------------------------------------------------
# Transformer
# --------------------------------------------------------------------------------------------------

@dataclass
class TransformerConfig:
    """A pre-LayerNorm Transformer encoder classifier. Sizes default to matched_transformer_config's MNIST pick."""

    channels: tuple[int, ...] = (256,)
    n_classes: int = 10
    d_model: int = 128
    n_layers: int = 7
    n_heads: int = 4
    d_ff: int = 512
    dropout: float = 0.0            # as ModelConfig.dropout (matched configs inherit it)
    positions: str = "sinusoidal"   # "learned" (a max_len x d_model table) | "sinusoidal" (no parameters)
    readout: str = "mean"           # "mean" over real elements | "cls" (a learned token prepended)
    max_len: int = 1024             # longest sequence for learned positions (unused by sinusoidal)
    encoder: str = "embedding"      # input encoder kind, as ModelConfig.encoder
    ffn_hidden: int = 256           # classifier head: the same 2-layer FFN as the LSTM's
    checkpoint: bool = False        # recompute each layer in backward (activation memory ~1 layer instead of n_layers)

    def __post_init__(self):
        self.channels = tuple(int(c) for c in self.channels)

    def validate(self) -> "TransformerConfig":
        check_fields(self, {"positions": POSITIONS, "readout": READOUTS, "encoder": ENCODERS},
                     ("n_classes", "d_model", "n_layers", "n_heads", "d_ff", "max_len", "ffn_hidden"))
        if self.d_model % self.n_heads:
            raise ValueError(f"model.d_model={self.d_model!r} is invalid: must be a multiple of n_heads={self.n_heads}")
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
        q, k, v = self.qkv(h).view(B, T, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4).unbind(0)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.out(a.transpose(1, 2).reshape(B, T, d))


class TransformerLayer(nn.Module):
    """Pre-LN block: h + Attn(LN(h)), then h + FFN(LN(h)) with GELU."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, n_heads, dropout)
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Dropout(dropout), nn.Linear(d_ff, d_model))
        self.drop = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
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
        self.norm = nn.LayerNorm(cfg.d_model)
        self.classifier = feed_forward(cfg.d_model, cfg.ffn_hidden, cfg.n_classes, cfg.dropout)

    def logits(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Class logits (B, n_classes) with autograd. x: (B, T[, C]) tokens; lengths: (B,)."""
        cfg = self.cfg
        x, lengths = _check_batch(x, lengths, cfg.channels)
        B, T, _ = x.shape
        h = self.encoder(x)  # (B, T, d)
        if cfg.positions == "learned":
            if T > cfg.max_len:
                raise ValueError(f"sequence length T={T} exceeds model.max_len={cfg.max_len} of the learned positions")
            h = h + self.positions[:T].to(h.dtype)
        else:
            h = h + sinusoidal_positions(T, cfg.d_model, h.device, h.dtype)
        lengths_dev = lengths.to(h.device)
        real = torch.arange(T, device=h.device).unsqueeze(0) < lengths_dev.unsqueeze(1)  # (B, T)
        if self.cls is not None:
            h = torch.cat([self.cls.to(h.dtype).expand(B, 1, -1), h], dim=1)
            real = torch.cat([real.new_ones(B, 1), real], dim=1)
        # A mask only when some sequence is padded: without one, CUDA can use the flash kernel.
        mask = None if bool((lengths == T).all()) else real[:, None, None, :]
        h = self.drop(h)
        recompute = cfg.checkpoint and torch.is_grad_enabled() and h.requires_grad
        for layer in self.layers:
            h = checkpoint(layer, h, mask, use_reentrant=False) if recompute else layer(h, mask)
        h = self.norm(h)
        if cfg.readout == "cls":
            pooled = h[:, 0]
        else:
            w = real.to(h.dtype).unsqueeze(-1)
            pooled = (h * w).sum(1) / lengths_dev.to(h.dtype).unsqueeze(1)
        return self.classifier(pooled)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Class logits (B, n_classes), no grad."""
        return self.logits(x, lengths)

    def forward(self, x, lengths, y=None, *, generator=None, phase="train", aux_weight=1.0, anchors=None) -> StepOutput:
        """Supervised loss only: generator, aux_weight and anchors are accepted for the interface and unused."""
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
        if phase == "pretrain":
            raise ValueError("the Transformer baseline has no auxiliary loss, so no 'pretrain' phase; "
                             "set the pretraining steps/epochs to 0 for model.arch=transformer")
        if y is None:
            raise ValueError("phase 'train' needs labels y")
        logits = self.logits(x, lengths)
        loss = F.cross_entropy(logits, y.to(logits.device).long())
        return StepOutput(loss=loss, sup_loss=loss, logits=logits.detach())

    def num_parameters(self) -> dict[str, int]:
        total = _count(self)
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
_D_MODELS = tuple(range(64, 513, 32))   # with 4 heads: head widths 16..128, multiples of 8 (flash kernels)
_N_LAYERS = tuple(range(1, 13))


def matched_transformer_config(rnn_cfg: ModelConfig, **overrides) -> TransformerConfig:
    """A Transformer whose parameter count is within 10% of the r-LSTM's total (main + auxiliary heads).

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


def rnn_parameters(rnn_cfg: ModelConfig) -> dict[str, int]:
    """AuxRNN(rnn_cfg).num_parameters(), without drawing from the global RNG.

    Counting happens at any time (e.g. when a resumed run logs its sizes); building a throwaway model
    would otherwise shift the random stream that dropout draws from, and resume would not be exact.
    """
    with torch.random.fork_rng(devices=[]):
        return AuxRNN(rnn_cfg).num_parameters()


def parameter_report(rnn_cfg: ModelConfig, tf_cfg: TransformerConfig | None = None) -> dict:
    """Both parameter counts (the CLI prints `report["text"]`)."""
    tf_cfg = tf_cfg or matched_transformer_config(rnn_cfg)
    rnn = rnn_parameters(rnn_cfg)
    tf = transformer_parameters(tf_cfg)
    ratio = tf / rnn["total"]
    text = (f"r-LSTM ({rnn_cfg.cell}-{rnn_cfg.hidden}, aux={rnn_cfg.aux}): {rnn['total']:,} parameters "
            f"(main {rnn['main']:,} + auxiliary {rnn['auxiliary']:,}); "
            f"Transformer (d_model={tf_cfg.d_model}, layers={tf_cfg.n_layers}, heads={tf_cfg.n_heads}, "
            f"d_ff={tf_cfg.d_ff}, positions={tf_cfg.positions}): {tf:,} parameters ({ratio - 1:+.1%})")
    return {"rnn_main": rnn["main"], "rnn_auxiliary": rnn["auxiliary"], "rnn_total": rnn["total"],
            "transformer": tf, "ratio": ratio, "within_10pct": abs(ratio - 1) <= MATCH_TOLERANCE, "text": text}


# --------------------------------------------------------------------------------------------------
# SA-LSTM and LM-LSTM
# --------------------------------------------------------------------------------------------------

@dataclass
class PretrainedLSTMConfig(ModelConfig):
    """ModelConfig of the plain LSTM plus the kind of pretraining.

    kind "sa": the decoder is the r-LSTM's (aux_hidden x aux_layers LSTM + FFN) and rebuilds the last
    subseq_len elements from the final state; the main gradient stops aux_truncate steps before the end.
    kind "lm": a linear softmax on the main outputs predicts the next element; truncated BPTT in
    consecutive windows of aux_truncate steps. Fine-tuning uses truncate like the plain LSTM.
    """

    aux: str = "none"   # the pretraining head replaces the r-/p-LSTM heads
    kind: str = "sa"    # "sa" | "lm"

    def validate(self) -> "PretrainedLSTMConfig":
        super().validate()
        if self.aux != "none":
            raise ValueError(f"model.aux={self.aux!r} is invalid for SA-/LM-LSTM: use 'none' "
                             "(the pretraining head is chosen by model.kind)")
        if self.kind not in PRETRAIN_KINDS:
            raise ValueError(f"model.kind={self.kind!r} is invalid: choose one of {PRETRAIN_KINDS}")
        return self


def lm_windows(lengths: torch.Tensor, width: int) -> Windows:
    """Consecutive windows of `width` steps over the inputs that have a successor, x[0 : len-1].

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
    loss alone, with AuxRNN's truncation (aux_weight is ignored, as in Dai & Le's fine-tuning).
    """

    def __init__(self, cfg: PretrainedLSTMConfig):
        if not isinstance(cfg, PretrainedLSTMConfig):
            raise TypeError("SequencePretrainedLSTM needs a PretrainedLSTMConfig (see model_config)")
        super().__init__(cfg.validate())
        if cfg.kind == "sa":
            self.pretrainer = Reconstructor(cfg.channels, self.core.state_size, cfg.embed_dim, cfg.aux_hidden,
                                            cfg.aux_layers, cfg.ffn_hidden, cfg.encoder, cfg.dropout,
                                            cfg.teacher_forcing)
        else:
            self.pretrainer = nn.Linear(cfg.hidden, sum(cfg.channels))

    def forward(self, x, lengths, y=None, *, generator=None, phase="train", aux_weight=1.0, anchors=None) -> StepOutput:
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
        if phase == "train":
            return super().forward(x, lengths, y, generator=generator, phase="train", aux_weight=aux_weight)
        x, lengths = self._check(x, lengths)
        nll, count = self._autoencoder_loss(x, lengths) if self.cfg.kind == "sa" else self._lm_loss(x, lengths)
        loss = nll / max(count, 1)
        return StepOutput(loss=loss, aux_loss=loss, aux_tokens=count)

    def _autoencoder_loss(self, x: torch.Tensor, lengths: torch.Tensor):
        """Rebuild the last min(len, subseq_len) elements from the final state; main BPTT of aux_truncate steps."""
        cfg = self.cfg
        ends = lengths.unsqueeze(1)  # (B, 1): one "anchor" at each sequence's end
        w = reconstruct_windows(ends, cfg.aux_truncate)
        start = scan(self.core, self.encoder, x, w.rows, w.start, self._read_chunk(x, w.rows.numel()))
        _, end = run_window(self.core, self.encoder, x, w, start)
        positions, mask = reconstruct_targets(ends, cfg.subseq_len)
        tokens = x[w.rows.to(x.device).unsqueeze(1), positions.to(x.device)]  # (B, L, C)
        return self.pretrainer(torch.cat(end, dim=-1), tokens, mask)

    def _lm_loss(self, x: torch.Tensor, lengths: torch.Tensor):
        """Next-element NLL over every window of aux_truncate steps, all windows in one batched call."""
        cfg = self.cfg
        w = lm_windows(lengths, cfg.aux_truncate)
        if w.rows.numel() == 0:  # every sequence has one element: nothing to predict
            return self.pretrainer.weight.sum() * 0.0, 0
        chunk = _aligned_chunk(cfg.aux_truncate, cfg.chunk) or self._read_chunk(x, w.rows.numel())
        start = scan(self.core, self.encoder, x, w.rows, w.start, chunk)
        out, _ = run_window(self.core, self.encoder, x, w, start)  # (R, W, H)
        W = out.shape[1]
        j = torch.arange(W).unsqueeze(0)
        mask = j < w.width.unsqueeze(1)
        positions = torch.clamp(w.start.unsqueeze(1) + 1 + j, max=x.shape[1] - 1)
        targets = x[w.rows.to(x.device).unsqueeze(1), positions.to(x.device)]  # (R, W, C)
        return token_nll(self.pretrainer(out), targets, mask, cfg.channels)

    def num_parameters(self) -> dict[str, int]:
        n = super().num_parameters()
        aux = n["auxiliary"] + _count(self.pretrainer)
        return {"main": n["main"], "auxiliary": aux, "total": n["main"] + aux}


SHARED_PREFIXES = ("encoder.", "core.")
HEAD_PREFIXES = ("pretrainer.", "reconstructor.", "predictor.")


def transfer_pretrained(src_state_dict: Mapping[str, torch.Tensor], model: nn.Module) -> list[str]:
    """Load a pretraining state dict into a (fine-tuning) model; returns the loaded keys, sorted.

    Strict on the shared parts: every `encoder.*` and `core.*` tensor of `model` must be in the source with
    the same shape. Pretraining heads (`pretrainer.`, `reconstructor.`, `predictor.`) are copied where both
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


def can_pretrain(model: nn.Module) -> bool:
    """Whether phase "pretrain" has a loss for this model."""
    if isinstance(model, SequencePretrainedLSTM):
        return True
    if isinstance(model, AuxRNN):
        return model.cfg.aux != "none"
    return False


# --------------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------------

_KIND = {"sa-lstm": "sa", "lm-lstm": "lm"}


def _split(d: Mapping[str, Any], cls) -> tuple[dict, dict]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}, {k: v for k, v in d.items() if k not in names}


def model_config(arch: str, cfg: Any = None):
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
    """Any model of the pipeline: "rnn" (LSTM / r-LSTM / p-LSTM), "transformer", "sa-lstm", "lm-lstm".

    `cfg`: a config object or a dict of its fields (see model_config). The module's `.cfg.to_dict()`
    describes it.
    """
    c = model_config(arch, cfg)
    if arch == "rnn":
        return AuxRNN(c)
    if arch == "transformer":
        return TransformerClassifier(c)
    return SequencePretrainedLSTM(c)


# --------------------------------------------------------------------------------------------------
# Out-of-memory as a result
# --------------------------------------------------------------------------------------------------

_OOM_MARKERS = ("out of memory", "can't allocate memory")


def is_oom(exc: BaseException) -> bool:
    """CUDA out-of-memory, a RuntimeError saying "out of memory", or a CPU allocation failure."""
    if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc).lower() for m in _OOM_MARKERS)


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_guarded(fn: Callable, *args, **kwargs) -> tuple[Any, str | None]:
    """(fn(*args, **kwargs), None), or (None, error) if it ran out of memory. Other errors propagate.

    The exception (and the frames holding its tensors) is dropped before the CUDA cache is freed.
    """
    error = None
    try:
        return fn(*args, **kwargs), None
    except BaseException as exc:  # noqa: B902 - filtered below
        if not is_oom(exc):
            raise
        lines = str(exc).strip().splitlines() or [""]
        error = f"{type(exc).__name__}: {lines[0][:500]}"
    free_memory()
    return None, error


def sweep_lengths(make_and_run: Callable[[int], dict], lengths: Iterable[int], *,
                  stop_after_oom: bool = False, on_row: Callable[[dict], None] | None = None) -> list[dict]:
    """One row per length: {"T": T, "status": "ok", **make_and_run(T)} or {"T": T, "status": "oom", "error": ...}.

    An OOM at one length does not stop the sweep. With stop_after_oom, every longer length after the
    first OOM gets {"T": T, "status": "skipped", "error": "oom at T=..."} without running. `on_row` sees
    each row as soon as it exists (for printing).
    """
    rows, oom_at = [], None
    for T in lengths:
        T = int(T)
        if oom_at is not None and stop_after_oom and T >= oom_at:
            row = {"T": T, "status": "skipped", "error": f"oom at T={oom_at}"}
        else:
            result, error = run_guarded(make_and_run, T)
            if error is not None:
                row = {"T": T, "status": "oom", "error": error}
                oom_at = T if oom_at is None else min(oom_at, T)
            else:
                row = {"T": T, "status": "ok", **(result or {})}
                row["T"] = T
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows


# --------------------------------------------------------------------------------------------------
# Parameter table (docs/baselines.md; `python -m auxrnn.baselines` prints it)
# --------------------------------------------------------------------------------------------------

DATASET_SHAPES = {  # name -> ModelConfig fields of its input and output (docs/interfaces.md)
    "MNIST, pMNIST": dict(channels=(256,), n_classes=10),
    "CIFAR10 (RGB)": dict(channels=(256, 256, 256), n_classes=10),
    "StanfordDogs (gray)": dict(channels=(256,), n_classes=120),
    "DBpedia (bytes)": dict(channels=(257,), n_classes=14),
}


def parameter_table(shapes: Mapping[str, dict] | None = None) -> str:
    """Markdown table of the total (main + auxiliary) parameter counts of every model at the paper's defaults."""
    cols = [("LSTM", "rnn", dict(aux="none")), ("r-LSTM", "rnn", dict(aux="reconstruct")),
            ("p-LSTM", "rnn", dict(aux="predict")), ("SA-LSTM", "sa-lstm", {}), ("LM-LSTM", "lm-lstm", {}),
            ("Transformer", "transformer", {})]
    lines = ["| dataset | " + " | ".join(c[0] for c in cols) + " | Transformer shape |",
             "|---" * (len(cols) + 2) + "|"]
    for name, shape in (shapes or DATASET_SHAPES).items():
        counts, tf = [], None
        for _, arch, extra in cols:
            cfg = model_config(arch, {**shape, **extra})
            if arch == "transformer":
                counts.append(transformer_parameters(cfg))
                tf = cfg
            else:
                counts.append(build_model(arch, cfg).num_parameters()["total"])
        rl = counts[1]
        cells = [f"{c:,}" for c in counts[:-1]] + [f"{counts[-1]:,} ({counts[-1] / rl - 1:+.1%})"]
        lines.append(f"| {name} | " + " | ".join(cells) +
                     f" | d_model {tf.d_model}, {tf.n_layers} layers, d_ff {tf.d_ff} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(parameter_table())
