"""AuxModel: a recurrent classifier (or regressor) trained with auxiliary objectives, the constant-memory way.

One call of `forward` is one training step's losses:

    anchors (per objective, per example, fresh each step) -> windows (index arithmetic)
    -> one chunked no-grad read of the sequence, keeping only the states where windows start
    -> each window recomputed with autograd from its detached start
    -> head on the output at the last real element; each objective's head at its anchors

Every part is the user's to replace: the encoder, the recurrent core, the head, the main loss and the
list of objectives. With no arguments it is the paper's r-LSTM (MNIST sizes).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from auxrnn.core.encoders import Encoder
from auxrnn.core.heads import feed_forward
from auxrnn.core.inputs import check_lengths
from auxrnn.core.objectives import Main, Objective, Reconstruct
from auxrnn.core.recurrent import Core, Recurrent, State, run_window, scan
from auxrnn.core.windows import Windows, supervised_windows

PHASES = ("pretrain", "train")


@dataclass
class StepOutput:
    """Losses of one step. loss is what to backpropagate; the rest is for logging."""

    loss: torch.Tensor
    sup_loss: torch.Tensor | None = None
    aux_loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None   # (B, ...) the head's output, detached
    aux_tokens: int = 0
    anchors: dict = field(default_factory=dict)


def parse_truncate(truncate) -> int | None:
    """Supervised BPTT steps: "full" or None -> None (full BPTT); an int K >= 0 -> K (0: no gradient into the core)."""
    if truncate is None or truncate == "full":
        return None
    if isinstance(truncate, bool) or not isinstance(truncate, int) or truncate < 0:
        raise ValueError(f"truncate={truncate!r} is invalid: use 'full' (full BPTT), 0 (no supervised gradient "
                         "into the core) or a positive number of steps")
    return truncate


class AuxModel(nn.Module):
    """A model built from the user's parts, trained with truncated BPTT and auxiliary objectives.

    Args:
        encoder: module (B, t, ...) -> (B, t, D). Default: one 128-wide embedding of 256 tokens (pixels).
        core: nn.LSTM / nn.GRU / nn.RNN (any num_layers, batch_first either way) or any module with the
            contract ``(inputs, state) -> (outputs, state)`` (see `auxrnn.core.recurrent.Core`).
            Default: a 1-layer LSTM-128 (forget bias 1, decision M17).
        head: module (B, H) -> anything `loss` takes, applied to the core's output at each sequence's last
            real element. Default: the FFN (256, 256) to 10 classes.
        objectives: auxiliary objectives, each with its weight. Default: [Reconstruct()] (the paper's 1 x 600).
        truncate: supervised BPTT: "full" (or None), K > 0 steps before the end, or 0 (none into the core).
        loss: ``loss(head_output, y) -> scalar``. Default: cross-entropy on integer labels.
        chunk: steps per call of the no-grad read (an upper bound on CPU; decision M16).
    """

    def __init__(self, encoder: nn.Module | None = None, core: nn.Module | None = None, head: nn.Module | None = None,
                 objectives: Sequence[Objective] | None = None, truncate: int | str | None = 300,
                 loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None, chunk: int = 256):
        super().__init__()
        self.truncate = parse_truncate(truncate)
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
            raise ValueError(f"chunk={chunk!r} is invalid: must be an integer >= 1")
        self.chunk = chunk
        self.encoder = encoder if encoder is not None else Encoder((256,), 128)
        self.core = core if isinstance(core, Core) else Core(core) if core is not None else Recurrent("lstm", 128, 128)
        self.classifier = head if head is not None else feed_forward(self.core.hidden, 256, 10)
        self.loss_fn = loss
        objectives = [Reconstruct()] if objectives is None else list(objectives)
        self.objectives: list[Objective] = []
        self.keys: list[str] = []  # one per objective: its name, numbered when it repeats (anchors are keyed by it)
        for obj in objectives:
            if not isinstance(obj, Objective):
                raise TypeError(f"objectives must be Objective instances (auxrnn.core.objectives), got {obj!r}")
            obj.bind(self.core)
            n = sum(o.name == obj.name for o in self.objectives)
            self.keys.append(obj.name if n == 0 else f"{obj.name}_{n}")
            self.add_module(obj.attr if n == 0 else f"{obj.attr}_{n}", obj)
            self.objectives.append(obj)

    def _read_chunk(self, x: torch.Tensor, n_requests: int) -> int:
        """Steps per call of the no-grad read.

        Each request re-reads up to one chunk to catch up from the boundary below it. On a GPU those
        rows run in parallel, so the configured chunk is best; on a CPU the work adds up, so the chunk
        shrinks towards sqrt(2 B T / R), which balances catch-up work against per-call overhead.
        """
        if x.device.type != "cpu":
            return self.chunk  # decision M16
        B, T = x.shape[:2]
        return int(min(self.chunk, max(16, math.isqrt(2 * B * T // max(n_requests, 1)))))

    def _head(self, state: State) -> torch.Tensor:
        """The head on the core's output at the step that produced `state` (decision M19 for the LSTM)."""
        return self.classifier(self.core.readout(state))

    @torch.no_grad()
    def predict(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The head's output (B, ...) (class logits by default) from one chunked no-grad read: memory flat in T."""
        x, lengths = check_lengths(x, lengths)  # (B, T, ...), (B,)
        final = scan(self.core, self.encoder, x, torch.arange(x.shape[0]), lengths, self._read_chunk(x, x.shape[0]))
        return self._head(final)

    def forward(self, x, lengths, y=None, *, generator=None, phase="train", aux_weight=1.0, anchors=None) -> StepOutput:
        """One training step's losses.

        Args:
            x: (B, T) or (B, T, ...) inputs (tokens or real values) on the model's device; lengths: (B,) real lengths.
            y: (B, ...) targets of the main loss (needed in phase "train").
            generator: CPU torch.Generator for the anchors (fresh per example and per step).
            phase: "pretrain" (auxiliary losses only) or "train" (main loss + aux_weight * auxiliary).
            anchors: optional {objective key: (B, n)} to fix the anchors (tests); keys are in `self.keys`.
        Returns:
            StepOutput; loss = main + aux_weight * sum_k weight_k * (mean loss of objective k).
        """
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
        x, lengths = check_lengths(x, lengths)  # (B, T, ...), (B,)
        supervised = phase == "train"
        if supervised and y is None:
            raise ValueError("phase 'train' needs targets y")
        if not supervised and not self.objectives:
            raise ValueError("phase 'pretrain' needs an auxiliary objective; this model has none")
        anchors = dict(anchors or {})
        for key, obj in zip(self.keys, self.objectives):
            if key not in anchors:
                anchors[key] = obj.sample(lengths, generator)  # (B, n)

        # Every window needs the detached state where it starts; full BPTT instead keeps the graph of the
        # read itself up to each sequence's end, so the core still reads the sequence only once.
        full = supervised and self.truncate is None
        wins: dict[str, Windows] = {}
        if supervised:
            wins[""] = supervised_windows(lengths, self.truncate)
        for key, obj in zip(self.keys, self.objectives):
            wins[key] = obj.windows(anchors[key], lengths)
        starts = self._start_states(x, wins, full)  # group name -> state, batch first

        out = StepOutput(loss=x.new_zeros((), dtype=torch.float32), anchors=anchors)
        if supervised:
            final = starts[""]  # full BPTT: the attached final state already; else the window's start
            if not full:
                final = run_window(self.core, self.encoder, x, wins[""], final)[1]
            pred = self._head(final)
            out.sup_loss = (F.cross_entropy(pred, y.to(pred.device).long()) if self.loss_fn is None
                            else self.loss_fn(pred, y.to(pred.device)))
            out.logits = pred.detach()
            out.loss = out.sup_loss
        main = Main(self.core, x, lambda w, s: run_window(self.core, self.encoder, x, w, s))
        aux = None
        for key, obj in zip(self.keys, self.objectives):
            total, count = obj.loss(main, wins[key], starts[key], anchors[key])
            term = obj.weight * total / max(count, 1)  # mean per scored value (decision M9), weighted
            aux, out.aux_tokens = (term if aux is None else aux + term), out.aux_tokens + count
        if aux is not None:
            out.aux_loss = aux
            out.loss = aux if not supervised else out.loss + aux_weight * aux  # decision T14
        return out

    def _start_states(self, x: torch.Tensor, wins: dict[str, Windows], full: bool) -> dict[str, State]:
        """The state where each named group of windows starts, all from one chunked read of x.

        With full BPTT the supervised group ("") starts nowhere: its entry is the attached final state instead.
        """
        names = list(wins)
        rows = [wins[k].rows for k in names]
        pos = [wins[k].start for k in names]
        keep = [torch.zeros_like(wins[k].rows, dtype=torch.bool) for k in names]
        if full:  # the supervised loss reads the whole sequence with the graph kept, up to each length
            i = names.index("")
            pos[i] = wins[""].start + wins[""].width
            keep[i] = torch.ones_like(keep[i])
        rows_all, pos_all, keep_all = torch.cat(rows), torch.cat(pos), torch.cat(keep)  # (R_all,) each
        # Full BPTT keeps the graph of every chunk: few, long calls are cheapest there.
        chunk = self.chunk if full else self._read_chunk(x, rows_all.numel())
        states = scan(self.core, self.encoder, x, rows_all, pos_all, chunk, keep=keep_all)  # each (R_all, ...)
        sizes = [r.numel() for r in rows]
        parts = zip(*(torch.split(s, sizes) for s in states))  # one state tuple per group
        return dict(zip(names, parts))

    def all_parameters_used(self, phase: str) -> bool:
        """Whether one step of `phase` gives every parameter a gradient (DDP can then skip its search).

        Pretraining leaves the head out; Truncate 0 without an auxiliary objective leaves the core out.
        """
        if phase == "pretrain":
            return False
        return not (not self.objectives and self.truncate == 0)

    def num_parameters(self) -> dict[str, int]:
        """Parameter counts of the main network and of the auxiliary heads."""
        main = sum(count_parameters(m) for m in (self.encoder, self.core, self.classifier))
        aux = sum(count_parameters(o) for o in self.objectives)
        return {"main": main, "auxiliary": aux, "total": main + aux}


def count_parameters(module: nn.Module | None) -> int:
    """Number of parameters of a module; 0 for None (an absent head)."""
    return sum(p.numel() for p in module.parameters()) if module is not None else 0
