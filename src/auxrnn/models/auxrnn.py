"""The main recurrent classifier with auxiliary losses (r-LSTM, p-LSTM), read top to bottom.

One call of `AuxRNN.forward` is one training step's losses:

    anchors (per example, fresh each step) -> windows (index arithmetic)
    -> one chunked no-grad read of the sequence, keeping only the states where windows start
    -> each window recomputed with autograd from its detached start
    -> classifier on the state after the last real element; decoder / predictor at the anchors
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from auxrnn.core.anchors import sample_anchors
from auxrnn.core.encoders import Encoder
from auxrnn.core.heads import Predictor, Reconstructor, feed_forward
from auxrnn.core.inputs import check_batch
from auxrnn.core.recurrent import Recurrent, State, detach_state, run_window, scan
from auxrnn.core.windows import (Windows, predict_targets, predict_windows, reconstruct_targets,
                                 reconstruct_windows, segments, supervised_windows)
from auxrnn.models.config import PHASES, ModelConfig


@dataclass
class StepOutput:
    """Losses of one step. loss is what to backpropagate; the rest is for logging."""

    loss: torch.Tensor
    sup_loss: torch.Tensor | None = None
    aux_loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None   # (B, n_classes), detached
    aux_tokens: int = 0
    anchors: dict = field(default_factory=dict)


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

    def _read_chunk(self, x: torch.Tensor, n_requests: int) -> int:
        """Steps per call of the no-grad read.

        Each request re-reads up to one chunk to catch up from the boundary below it. On a GPU those
        rows run in parallel, so the configured chunk is best; on a CPU the work adds up, so the chunk
        shrinks towards sqrt(2 B T / R), which balances catch-up work against per-call overhead.
        """
        if x.device.type != "cpu":
            return self.cfg.chunk  # decision M16
        B, T = x.shape[:2]
        return int(min(self.cfg.chunk, max(16, math.isqrt(2 * B * T // max(n_requests, 1)))))

    def _classify(self, state: State) -> torch.Tensor:
        """(B, n_classes) logits from h (B, H) of the state after the last real element."""
        return self.classifier(state[0])

    @torch.no_grad()
    def predict(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Class logits (B, n_classes) from one chunked no-grad read: memory flat in T."""
        x, lengths = check_batch(x, lengths, self.cfg.channels)  # (B, T, C), (B,)
        final = scan(self.core, self.encoder, x, torch.arange(x.shape[0]), lengths, self._read_chunk(x, x.shape[0]))
        return self._classify(final)  # (B, n_classes)

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
        x, lengths = check_batch(x, lengths, cfg.channels)  # (B, T, C), (B,)
        supervised = phase == "train"
        if supervised and y is None:
            raise ValueError("phase 'train' needs labels y")
        if not supervised and cfg.aux == "none":
            raise ValueError("phase 'pretrain' needs an auxiliary loss; model.aux is 'none'")
        anchors = dict(anchors or {})
        for kind, head in (("reconstruct", self.reconstructor), ("predict", self.predictor)):
            if head is not None and kind not in anchors:
                anchors[kind] = sample_anchors(lengths, cfg.n_anchors, cfg.subseq_len, kind, generator)  # (B, n)

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
        starts = self._start_states(x, wins, full)  # group name -> state, each (R_group, H)

        out = StepOutput(loss=x.new_zeros((), dtype=torch.float32), anchors=anchors)
        if supervised:
            final = starts["sup"]  # full BPTT: the attached final state already; else the window's start
            if not full:
                final = run_window(self.core, self.encoder, x, wins["sup"], final)[1]  # each (B, H)
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
            out.aux_loss = nll / max(count, 1)  # mean NLL per scored token (x channels): decision M9
            out.aux_tokens = count
            out.loss = out.aux_loss if not supervised else out.loss + aux_weight * out.aux_loss  # decision T14
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
        rows_all, pos_all, keep_all = torch.cat(rows), torch.cat(pos), torch.cat(keep)  # (R_all,) each
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
        return self.reconstructor(torch.cat(end, dim=-1), tokens, mask)  # state (R, 2H) for an LSTM

    def _predict(self, x, w: Windows, start: State) -> tuple[torch.Tensor, int]:
        """p-LSTM: the aux RNN, stacked on the main outputs from each anchor on, predicts the next element.

        The L steps are backpropagated in segments of aux_truncate steps; main and aux RNN both restart each
        segment from their detached state where the previous one ended (the paper truncates "to 300 for both
        supervised and auxiliary losses"; decision M11).
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

    def all_parameters_used(self, phase: str) -> bool:
        """Whether one step of `phase` gives every parameter a gradient (DDP can then skip its search).

        Pretraining leaves the classifier out; Truncate 0 without an auxiliary loss leaves the core out.
        """
        if phase == "pretrain":
            return False
        return not (self.cfg.aux == "none" and self.cfg.supervised_truncate == 0)

    def num_parameters(self) -> dict[str, int]:
        """Parameter counts of the main network and of the auxiliary heads."""
        main = count_parameters(self.encoder) + count_parameters(self.core) + count_parameters(self.classifier)
        aux = count_parameters(self.reconstructor) + count_parameters(self.predictor)
        return {"main": main, "auxiliary": aux, "total": main + aux}


def count_parameters(module: nn.Module | None) -> int:
    """Number of parameters of a module; 0 for None (an absent head)."""
    return sum(p.numel() for p in module.parameters()) if module is not None else 0


def rnn_parameters(cfg: ModelConfig) -> dict[str, int]:
    """AuxRNN(cfg).num_parameters() by formula: no module is built and no random number is drawn.

    For sizes needed without the module (the Transformer matched to an r-LSTM): a throwaway build would
    cost time and, outside a forked RNG, shift the random stream that a resumed run must replay exactly.
    """
    def linear(d_in: int, d_out: int) -> int:
        return d_in * d_out + d_out

    def lstm(cell: str, d_in: int, hidden: int, layers: int = 1) -> int:  # torch's weights and both biases
        gates = 4 if cell == "lstm" else 3
        return sum(gates * hidden * ((d_in if i == 0 else hidden) + hidden + 2) for i in range(layers))

    def ffn(d_in: int, d_hidden: int, d_out: int) -> int:  # core.heads.feed_forward
        return linear(d_in, d_hidden) + linear(d_hidden, d_hidden) + linear(d_hidden, d_out)

    c = cfg.validate()
    vocab = sum(c.channels)
    encoder = vocab * c.embed_dim if c.encoder == "embedding" else linear(len(c.channels), c.embed_dim)
    main = encoder + lstm(c.cell, c.embed_dim, c.hidden) + ffn(c.hidden, c.ffn_hidden, c.n_classes)
    state_size = c.hidden * (2 if c.cell == "lstm" else 1)
    decoder = (encoder + linear(state_size, 2 * c.aux_hidden) + lstm("lstm", c.embed_dim, c.aux_hidden, c.aux_layers)
               + ffn(c.aux_hidden, c.ffn_hidden, vocab))
    predictor = lstm("lstm", c.hidden, c.aux_hidden, c.aux_layers) + ffn(c.aux_hidden, c.ffn_hidden, vocab)
    aux = decoder * (c.aux in ("reconstruct", "both")) + predictor * (c.aux in ("predict", "both"))
    return {"main": main, "auxiliary": aux, "total": main + aux}
