"""The main recurrent classifier with auxiliary losses (r-LSTM, p-LSTM), read top to bottom.

One call of `AuxRNN.forward` is one training step's losses:

    anchors (per example, fresh each step) -> windows (index arithmetic)
    -> one chunked no-grad read of the sequence, keeping only the states where windows start
    -> each window recomputed with autograd from its detached start
    -> classifier on the state after the last real element; decoder / predictor at the anchors
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from auxrnn.core.anchors import sample_anchors
from auxrnn.core.encoders import ENCODERS, Encoder
from auxrnn.core.heads import Predictor, Reconstructor, feed_forward
from auxrnn.core.recurrent import CELLS, Recurrent, State, detach_state, run_window, scan
from auxrnn.core.windows import (Windows, predict_targets, predict_windows, reconstruct_targets,
                                 reconstruct_windows, segments, supervised_windows)

AUX_KINDS = ("reconstruct", "predict", "both", "none")
PHASES = ("pretrain", "train")


@dataclass
class ModelConfig:
    """Architecture and truncation. Defaults are the paper's (§2); see docs/decisions.md for our choices."""

    channels: tuple[int, ...] = (256,)  # vocabulary size of each input channel
    n_classes: int = 10
    encoder: str = "embedding"          # "embedding" | "scalar"
    embed_dim: int = 128
    cell: str = "lstm"                  # "lstm" | "gru"
    hidden: int = 128
    aux: str = "reconstruct"            # "reconstruct" (r-LSTM) | "predict" (p-LSTM) | "both" | "none"
    n_anchors: int = 1
    subseq_len: int = 600               # L
    truncate: int | str = 300           # supervised BPTT: "full", K > 0, or 0 (no gradient into the core)
    aux_truncate: int = 300             # auxiliary BPTT: r-LSTM steps before each anchor; p-LSTM segment length
    aux_hidden: int = 256
    aux_layers: int = 2
    ffn_hidden: int = 256
    dropout: float = 0.0
    teacher_forcing: bool = True
    chunk: int = 256                    # steps per call of the no-grad read (an upper bound on CPU)
    forget_bias: float = 1.0            # initial LSTM forget-gate bias, every LSTM (decision M17)

    def __post_init__(self):
        self.channels = tuple(int(c) for c in self.channels)

    @property
    def supervised_truncate(self) -> int | None:
        """truncate as the library uses it: None for full BPTT."""
        return None if self.truncate == "full" else int(self.truncate)

    def validate(self) -> "ModelConfig":
        check_fields(self, {"aux": AUX_KINDS, "cell": tuple(CELLS), "encoder": ENCODERS},
                     ("n_anchors", "aux_truncate", "embed_dim", "hidden", "aux_hidden", "aux_layers", "ffn_hidden",
                      "chunk", "n_classes"))
        if self.truncate != "full" and (isinstance(self.truncate, bool) or not isinstance(self.truncate, int) or self.truncate < 0):
            _bad("truncate", self.truncate, "use 'full', 0 (no supervised gradient into the core) or a positive int")
        if self.subseq_len < 2:
            _bad("subseq_len", self.subseq_len, "must be >= 2 (one element fed, one predicted)")
        return self

    def to_dict(self) -> dict:
        return config_dict(self)


def _bad(key, value, want):
    raise ValueError(f"model.{key}={value!r} is invalid: {want}")


def check_fields(cfg, choices: dict[str, tuple], positive: tuple[str, ...]) -> None:
    """Checks every model config shares: named choices, sizes >= 1, dropout in [0, 1), one vocabulary per channel."""
    for key, allowed in choices.items():
        if getattr(cfg, key) not in allowed:
            _bad(key, getattr(cfg, key), f"choose one of {tuple(allowed)}")
    for key in positive:
        if int(getattr(cfg, key)) < 1:
            _bad(key, getattr(cfg, key), "must be >= 1")
    if not 0.0 <= cfg.dropout < 1.0:
        _bad("dropout", cfg.dropout, "must be in [0, 1)")
    if not cfg.channels or min(cfg.channels) < 2:
        _bad("channels", cfg.channels, "one vocabulary size >= 2 per input channel")


def config_dict(cfg) -> dict:
    """A model config as plain YAML/JSON/checkpoint-friendly values."""
    d = asdict(cfg)
    d["channels"] = list(cfg.channels)
    return d


@dataclass
class StepOutput:
    """Losses of one step. loss is what to backpropagate; the rest is for logging."""

    loss: torch.Tensor
    sup_loss: torch.Tensor | None = None
    aux_loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None   # (B, n_classes), detached
    aux_tokens: int = 0
    anchors: dict = field(default_factory=dict)


def as_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, T) or (B, T, C) integer tokens -> (B, T, C). Floats are refused: tokens must be exact integers."""
    if x.is_floating_point() or x.is_complex():
        raise ValueError(f"inputs must be integer tokens (uint8 pixels, int64 ids), got dtype {x.dtype}")
    if x.dim() == 2:
        return x.unsqueeze(-1)
    if x.dim() != 3:
        raise ValueError(f"inputs must have shape (B, T) or (B, T, C), got {tuple(x.shape)}")
    return x


class AuxRNN(nn.Module):
    """Main recurrent classifier plus optional r-LSTM decoder and/or p-LSTM predictor."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg.validate()
        self.encoder = Encoder(cfg.channels, cfg.embed_dim, cfg.encoder)
        self.core = Recurrent(cfg.cell, cfg.embed_dim, cfg.hidden, cfg.forget_bias)
        self.classifier = feed_forward(cfg.hidden, cfg.ffn_hidden, cfg.n_classes, cfg.dropout)
        self.reconstructor = self.predictor = None
        if cfg.aux in ("reconstruct", "both"):
            self.reconstructor = Reconstructor(
                cfg.channels, self.core.state_size, cfg.embed_dim, cfg.aux_hidden, cfg.aux_layers,
                cfg.ffn_hidden, cfg.encoder, cfg.dropout, cfg.teacher_forcing, cfg.forget_bias)
        if cfg.aux in ("predict", "both"):
            self.predictor = Predictor(cfg.channels, cfg.hidden, cfg.aux_hidden, cfg.aux_layers, cfg.ffn_hidden,
                                       cfg.dropout, cfg.forget_bias)

    def _check(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = as_tokens(x)
        B, T, C = x.shape
        if C != len(self.cfg.channels):
            raise ValueError(f"inputs have {C} channels per step, the model expects {len(self.cfg.channels)}")
        lengths = lengths.long().cpu()
        if lengths.shape != (B,) or bool((lengths < 1).any()) or bool((lengths > T).any()):
            raise ValueError(f"lengths must be (B,)={B} values in [1, T={T}], got {lengths.tolist()[:8]}...")
        return x, lengths

    def _read_chunk(self, x: torch.Tensor, n_requests: int) -> int:
        """Steps per call of the no-grad read.

        Each request re-reads up to one chunk to catch up from the boundary below it. On a GPU those
        rows run in parallel, so the configured chunk is best; on a CPU the work adds up, so the chunk
        shrinks towards sqrt(2 B T / R), which balances catch-up work against per-call overhead.
        """
        if x.device.type != "cpu":
            return self.cfg.chunk
        B, T = x.shape[:2]
        return int(min(self.cfg.chunk, max(16, math.isqrt(2 * B * T // max(n_requests, 1)))))

    def _classify(self, state) -> torch.Tensor:
        return self.classifier(state[0])  # h of the state after the last real element

    @torch.no_grad()
    def predict(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Class logits (B, n_classes) from one chunked no-grad read: memory flat in T."""
        x, lengths = self._check(x, lengths)
        final = scan(self.core, self.encoder, x, torch.arange(x.shape[0]), lengths, self._read_chunk(x, x.shape[0]))
        return self._classify(final)

    def forward(self, x, lengths, y=None, *, generator=None, phase="train", aux_weight=1.0, anchors=None) -> StepOutput:
        """One training step's losses.

        Args:
            x: (B, T) or (B, T, C) integer tokens on the model's device; lengths: (B,) real lengths.
            y: (B,) class labels (needed in phase "train").
            generator: CPU torch.Generator for the anchors (fresh per example and per step).
            phase: "pretrain" (auxiliary loss only) or "train" (supervised + aux_weight * auxiliary).
            anchors: optional {"reconstruct": (B, n), "predict": (B, n)} to fix the anchors (tests).
        """
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
        cfg = self.cfg
        x, lengths = self._check(x, lengths)
        supervised = phase == "train"
        if supervised and y is None:
            raise ValueError("phase 'train' needs labels y")
        if not supervised and cfg.aux == "none":
            raise ValueError("phase 'pretrain' needs an auxiliary loss; model.aux is 'none'")
        anchors = dict(anchors or {})
        for kind, head in (("reconstruct", self.reconstructor), ("predict", self.predictor)):
            if head is not None and kind not in anchors:
                anchors[kind] = sample_anchors(lengths, cfg.n_anchors, cfg.subseq_len, kind, generator)

        # Every window needs the detached state where it starts; full BPTT instead keeps the graph of the
        # read itself up to each sequence's end, so the core still reads the sequence only once.
        full = supervised and cfg.supervised_truncate is None
        wins: dict[str, Windows] = {}
        if supervised:
            wins["sup"] = supervised_windows(lengths, cfg.supervised_truncate)
        if self.reconstructor is not None:
            wins["reconstruct"] = reconstruct_windows(anchors["reconstruct"], cfg.aux_truncate)
        if self.predictor is not None:
            wins["predict"] = predict_windows(anchors["predict"], lengths, cfg.subseq_len)
        starts = self._start_states(x, wins, full)

        out = StepOutput(loss=x.new_zeros((), dtype=torch.float32), anchors=anchors)
        if supervised:
            final = starts["sup"] if full else run_window(self.core, self.encoder, x, wins["sup"], starts["sup"])[1]
            logits = self._classify(final)  # (B, n_classes)
            out.sup_loss = F.cross_entropy(logits, y.to(logits.device).long())
            out.logits = logits.detach()
            out.loss = out.sup_loss
        nll, count = None, 0
        if self.reconstructor is not None:
            nll, count = self._reconstruct(x, wins["reconstruct"], starts["reconstruct"], anchors["reconstruct"])
        if self.predictor is not None:
            s, n = self._predict(x, wins["predict"], starts["predict"])
            nll, count = (s if nll is None else nll + s), count + n
        if nll is not None:
            out.aux_loss = nll / max(count, 1)
            out.aux_tokens = count
            out.loss = out.aux_loss if not supervised else out.loss + aux_weight * out.aux_loss
        return out

    def _start_states(self, x: torch.Tensor, wins: dict[str, Windows], full: bool) -> dict[str, State]:
        """The state where each named group of windows starts, all from one chunked read of x.

        With full BPTT the "sup" group starts nowhere: its entry is the attached final state instead.
        """
        names = list(wins)
        rows = [wins[k].rows for k in names]
        pos = [wins[k].start for k in names]
        keep = [torch.zeros_like(wins[k].rows, dtype=torch.bool) for k in names]
        if full:  # the supervised loss reads the whole sequence with the graph kept, up to each length
            i = names.index("sup")
            pos[i] = wins["sup"].start + wins["sup"].width
            keep[i] = torch.ones_like(keep[i])
        rows_all, pos_all, keep_all = torch.cat(rows), torch.cat(pos), torch.cat(keep)
        # Full BPTT keeps the graph of every chunk: few, long calls are cheapest there.
        chunk = self.cfg.chunk if full else self._read_chunk(x, rows_all.numel())
        states = scan(self.core, self.encoder, x, rows_all, pos_all, chunk, keep=keep_all)  # each (R_all, H)
        sizes = [r.numel() for r in rows]
        parts = zip(*(torch.split(s, sizes) for s in states))  # one state tuple per group
        return dict(zip(names, parts))

    def _reconstruct(self, x, w: Windows, start: State, anchors: torch.Tensor) -> tuple[torch.Tensor, int]:
        """r-LSTM: main BPTT over the aux_truncate steps before each anchor, then the decoder rebuilds x[a-L:a]."""
        _, end = run_window(self.core, self.encoder, x, w, start)  # (h, c) at the anchors, each (R, H)
        positions, mask = reconstruct_targets(anchors, self.cfg.subseq_len)  # (R, L), (R, L-1)
        tokens = x[w.rows.to(x.device).unsqueeze(1), positions.to(x.device)]  # (R, L, C)
        return self.reconstructor(torch.cat(end, dim=-1), tokens, mask)

    def _predict(self, x, w: Windows, start: State) -> tuple[torch.Tensor, int]:
        """p-LSTM: the aux RNN, stacked on the main outputs from each anchor on, predicts the next element.

        The L steps are backpropagated in segments of aux_truncate steps; main and aux RNN both restart each
        segment from their detached state where the previous one ended (the paper truncates "to 300 for both
        supervised and auxiliary losses"; docs/decisions.md M11).
        """
        nll, count, head_state = x.new_zeros((), dtype=torch.float32), 0, None
        for seg in segments(w, self.cfg.aux_truncate):
            main_out, end = run_window(self.core, self.encoder, x, seg, start)  # (R, W, H)
            if main_out is None:
                break
            positions, mask = predict_targets(seg, main_out.shape[1])  # (R, W) each
            targets = x[seg.rows.to(x.device).unsqueeze(1), positions.to(x.device)]  # (R, W, C)
            s, n, head_state = self.predictor(main_out, targets, mask, head_state)
            nll, count = nll + s, count + n
            start = detach_state(end)
            head_state = detach_state(head_state)
        return nll, count

    def num_parameters(self) -> dict[str, int]:
        """Parameter counts of the main network and of the auxiliary heads."""
        count = lambda m: sum(p.numel() for p in m.parameters()) if m is not None else 0  # noqa: E731
        main = count(self.encoder) + count(self.core) + count(self.classifier)
        aux = count(self.reconstructor) + count(self.predictor)
        return {"main": main, "auxiliary": aux, "total": main + aux}
