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
from auxrnn.core.objectives import Main, Objective, Predict, Reconstruct
from auxrnn.core.recurrent import Core, Recurrent, State, run_window, scan
from auxrnn.core.truncation import parse_truncate
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
        chunk: steps per call of the no-grad read. On a GPU it is the chunk used; on a CPU it is an upper
            bound, shrunk to max(16, sqrt(2 B T / R)) for B rows of T steps and R requested states
            (`read_chunk`, decision M16), so a small batch may read in smaller chunks than asked.

    The first call checks what only the data can tell: finite inputs, that the encoder takes x, and each
    objective's channels against x. Every call checks lengths, fixed anchors, that each objective's subsequence fits T, and (`Core`) that
    a custom core's `initial_state(B)` holds B rows where it says.
    """

    def __init__(self, encoder: nn.Module | None = None, core: nn.Module | None = None, head: nn.Module | None = None,
                 objectives: Sequence[Objective] | None = None, truncate: int | str | None = 300,
                 loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None, chunk: int = 256):
        super().__init__()
        self.truncate = parse_truncate(truncate)
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
            raise ValueError(f"chunk={chunk!r} is invalid: must be an integer >= 1")
        self.chunk = chunk
        self.checked = False  # the first call's data checks (`_check_data`) have passed
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
            check_channels(obj)
            obj.bind(self.core)
            n = sum(o.name == obj.name for o in self.objectives)
            self.keys.append(obj.name if n == 0 else f"{obj.name}_{n}")
            self.add_module(obj.attr if n == 0 else f"{obj.attr}_{n}", obj)
            self.objectives.append(obj)

    def read_chunk(self, x: torch.Tensor, n_requests: int) -> int:
        """Steps per call of the no-grad read of x (B, T, ...) for `n_requests` requested states.

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

    def _inputs(self, x: torch.Tensor, lengths) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, ...) and lengths as (B,) CPU int64 in [1, T], refusing what would be misread silently."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor (B, T, ...), got {type(x).__name__}")
        if lengths is None:
            raise TypeError("lengths is required: a (B,) integer tensor of real lengths, model(x, lengths, y); "
                            "torch.full((B,), T) when every sequence fills T")
        if not isinstance(lengths, torch.Tensor):
            raise TypeError(f"lengths must be a (B,) integer torch.Tensor, got {type(lengths).__name__}")
        if lengths.dtype.is_floating_point or lengths.dtype.is_complex or lengths.dtype == torch.bool:
            raise TypeError(f"lengths must be integers (torch.long), got dtype {lengths.dtype}")
        x, lengths = check_lengths(x, lengths)
        if not self.checked:
            self._check_data(x)
        return x, lengths

    def _check_data(self, x: torch.Tensor) -> None:
        """Once, at the first call: what only the data can tell. x: (B, T, ...)."""
        if (x.is_floating_point() or x.is_complex()) and not bool(torch.isfinite(x).all()):
            where = tuple((~torch.isfinite(x)).nonzero()[0].tolist())
            raise ValueError(f"x holds NaN or inf (first at index {where}): clean or impute the inputs first")
        with torch.no_grad():
            self.encoder(x[:, :1])  # the encoder's own complaint (dtype, channels) comes first
        for obj in self.objectives:
            check_channels(obj, x)
        self.checked = True

    def _check_lengths_fit(self, T: int) -> None:
        """Refuse subsequences longer than the sequences: every anchor would fall on one position."""
        for obj in self.objectives:
            room = type(obj).longest(T)
            if obj.subseq_len > room:
                raise ValueError(f"{type(obj).__name__}: subseq_len={obj.subseq_len} is longer than the sequences "
                                 f"(T={T}): every anchor would fall on one position; choose subseq_len <= {room}")

    def _anchors(self, anchors, lengths: torch.Tensor, generator) -> dict[str, torch.Tensor]:
        """Each objective's (B, n) anchors: the given ones, each in [0, length of its row], else fresh draws.

        Draws come from each objective's `anchor_range`; a fixed anchor may lie outside it (the objective scores
        what fits, e.g. Reconstruct min(L, a) elements), but never past its row's end, where it would score padding.
        """
        given = dict(anchors or {})
        unknown = sorted(set(given) - set(self.keys), key=str)
        if unknown:
            raise ValueError(f"anchors has unknown key(s) {unknown}: this model's objectives are {self.keys}")
        out = {}
        for key, obj in zip(self.keys, self.objectives):
            if key not in given:
                out[key] = obj.sample(lengths, generator)  # (B, n)
                continue
            a = given[key]
            if not isinstance(a, torch.Tensor) or a.dtype.is_floating_point or a.dtype.is_complex \
                    or a.dtype == torch.bool:
                what = a.dtype if isinstance(a, torch.Tensor) else type(a).__name__
                raise TypeError(f"anchors[{key!r}] must be a (B, n) integer tensor, got {what}")
            a = a.long().cpu()
            if a.dim() != 2 or a.shape[0] != lengths.shape[0] or a.shape[1] < 1:
                raise ValueError(f"anchors[{key!r}] must have shape (B={lengths.shape[0]}, n >= 1), got {tuple(a.shape)}")
            bad = (a < 0) | (a > lengths.unsqueeze(1))  # S_a exists for 0 <= a <= length (decision M1)
            if bool(bad.any()):
                i, j = bad.nonzero()[0].tolist()
                raise ValueError(f"anchors[{key!r}][{i}, {j}] = {int(a[i, j])} is outside [0, {int(lengths[i])}]: "
                                 f"anchor a names the state after consuming x[0:a] of its row, whose length is "
                                 f"{int(lengths[i])}")
            out[key] = a
        return out

    @torch.no_grad()
    def predict(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """The head's output (B, ...) (class logits by default) from one chunked no-grad read: memory flat in T.

        lengths: (B,) real lengths; None means every sequence fills T.
        """
        if lengths is None and isinstance(x, torch.Tensor) and x.dim() >= 2:
            lengths = torch.full((x.shape[0],), x.shape[1], dtype=torch.long)
        x, lengths = self._inputs(x, lengths)  # (B, T, ...), (B,)
        final = scan(self.core, self.encoder, x, torch.arange(x.shape[0]), lengths, self.read_chunk(x, x.shape[0]))
        return self._head(final)

    def forward(self, x, lengths, y=None, *, generator=None, phase="train", aux_weight=1.0, anchors=None) -> StepOutput:
        """One training step's losses.

        Args:
            x: (B, T) or (B, T, ...) inputs (tokens or real values) on the model's device.
            lengths: (B,) integer real lengths in [1, T] (required here; `predict` defaults them to T).
            y: (B, ...) targets of the main loss (needed in phase "train").
            generator: CPU torch.Generator for the anchors (fresh per example and per step).
            phase: "pretrain" (auxiliary losses only) or "train" (main loss + aux_weight * auxiliary).
            anchors: optional {objective key: (B, n) integers} to fix the anchors (tests); keys are in
                `self.keys`; anchor a names the state after consuming x[0:a], so 0 <= a <= lengths[b].
        Returns:
            StepOutput; loss = main + aux_weight * sum_k weight_k * (mean loss of objective k).
        """
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
        supervised = phase == "train"
        if supervised and y is None:
            raise ValueError("phase 'train' needs targets y: call model(x, lengths, y), lengths (B,) second")
        x, lengths = self._inputs(x, lengths)  # (B, T, ...), (B,)
        if not supervised and not self.objectives:
            raise ValueError("phase 'pretrain' needs an auxiliary objective; this model has none")
        self._check_lengths_fit(x.shape[1])
        anchors = self._anchors(anchors, lengths, generator)

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
        chunk = self.chunk if full else self.read_chunk(x, rows_all.numel())
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


def check_channels(obj: Objective, x: torch.Tensor | None = None) -> None:
    """`channels` has one meaning per kind of objective: a tuple of vocabulary sizes for token targets, an int C
    for real values. With x (B, T[, C]) it must also match the data: C values per step, tokens inside each vocabulary.
    """
    if not isinstance(obj, (Reconstruct, Predict)):
        return  # a user's objective checks its own targets
    name, ch = type(obj).__name__, obj.channels
    if obj.real_valued:
        if isinstance(ch, bool) or not isinstance(ch, int) or ch < 1:
            raise TypeError(f"{name}: channels={ch!r} is invalid: give C, the number of real values per step, "
                            "as an int (e.g. channels=3)")
        sizes = None
    else:
        if isinstance(ch, int) or not ch or any(isinstance(v, bool) or not isinstance(v, int) or v < 2 for v in ch):
            raise TypeError(f"{name}: channels={ch!r} is invalid: give a tuple with the vocabulary size (>= 2) of each "
                            "channel, e.g. (256,); real values need a value objective (ReconstructValues, "
                            "PredictValues) with channels=C")
        sizes = ch
    if x is None:
        return
    C = 1 if x.dim() == 2 else x.shape[2] if x.dim() == 3 else None
    expected = ch if sizes is None else len(sizes)
    if C != expected:
        raise ValueError(f"{name}: channels={ch!r} expects x of shape (B, T, {expected}), got {tuple(x.shape)}")
    if sizes is None:
        return
    if x.is_floating_point() or x.is_complex():
        raise TypeError(f"{name} scores integer tokens, got x of dtype {x.dtype}; real values need a value "
                        "objective (ReconstructValues, PredictValues)")
    steps = x if x.dim() == 3 else x.unsqueeze(-1)
    low, high = steps.amin(dim=(0, 1)).tolist(), steps.amax(dim=(0, 1)).tolist()
    for c, (lo, hi, v) in enumerate(zip(low, high, sizes)):
        if lo < 0 or hi >= v:
            raise ValueError(f"{name}: channel {c} of x holds tokens in [{lo}, {hi}], outside its vocabulary "
                             f"channels[{c}]={v} (tokens 0..{v - 1})")
