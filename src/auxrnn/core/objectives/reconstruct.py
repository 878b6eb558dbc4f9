"""Reconstruct (r-LSTM, paper §1.2): from the main state at an anchor, a decoder rebuilds the L elements before it.

    x:   0 ........... [a-K ...... a) -> S_a -> decoder rebuilds x[a-L : a]        a in [min(L, len), len]

Targets here are tokens (one softmax per channel, decision M8); `ReconstructValues` (reconstruct_values.py)
changes only the decoder's input, output and score.
"""
from __future__ import annotations

import torch
from torch import nn

from auxrnn.core.encoders import Encoder
from auxrnn.core.heads import feed_forward, token_nll
from auxrnn.core.objectives.base import Main, Objective
from auxrnn.core.recurrent import Core, State, init_forget_bias
from auxrnn.core.windows import Windows


def reconstruct_windows(anchors: torch.Tensor, steps: int) -> Windows:
    """Gradient windows of the main network: the `steps` (aux_truncate) before each anchor. anchors: (B, n)."""
    B, n = anchors.shape
    a = anchors.reshape(-1)
    start = torch.clamp(a - steps, min=0)
    return Windows(torch.arange(B).repeat_interleave(n), start, a - start)


def reconstruct_targets(anchors: torch.Tensor, subseq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions the decoder reads, and which of its predictions count (decisions M2, M3).

    The decoder is fed ``x[p_0], ..., x[p_{L-2}]`` and predicts ``x[p_1], ..., x[p_{L-1}]`` where
    ``p_j = a - L + j``: the L elements just before the anchor (decision M2), L-1 scored elements (decision M3).
    Near the start the window shrinks to ``a`` elements and is left-aligned (decision M4).

    Returns:
        positions: (R, L) int64, clamped to valid indices.
        mask: (R, L-1) bool, True where the target ``x[p_{j+1}]`` is real.
    """
    a = anchors.reshape(-1, 1)
    span = torch.clamp(a, max=subseq_len)  # (R, 1) elements actually available
    j = torch.arange(subseq_len).unsqueeze(0)
    positions = torch.clamp(a - span + j, min=0)
    return positions, (j[:, 1:] < span)


class Reconstruct(Objective):
    """r-LSTM: rebuild x[a-L : a] from the main state S_a with a decoder LSTM (teacher-forced by default).

    The decoder's bottom layer starts from a learned projection of the core's whole state (every tensor,
    every layer, flattened); the layers above start from zeros (decision M5). Main BPTT: the `aux_truncate`
    steps before the anchor; the decoder's own L-1 steps are not truncated (decision M6).

    Args (beyond Objective's): channels: vocabulary size per input channel; hidden, layers: decoder LSTM;
    ffn_hidden: its FFN; embed_dim, encoder: its own input encoder (decision M10); dropout;
    teacher_forcing (decision M7); forget_bias (decision M17).
    """

    name, attr = "reconstruct", "reconstructor"

    def __init__(self, n_anchors=1, subseq_len=600, aux_truncate=300, weight=1.0, *, channels=(256,), hidden=256,
                 layers=2, ffn_hidden=256, embed_dim=128, encoder="embedding", dropout=0.0, teacher_forcing=True,
                 forget_bias=1.0):
        super().__init__(n_anchors, subseq_len, aux_truncate, weight)
        self.channels = tuple(channels) if not isinstance(channels, int) else channels
        self.hidden, self.layers, self.ffn_hidden, self.embed_dim = hidden, layers, ffn_hidden, embed_dim
        self.encoder_kind, self.dropout, self.teacher_forcing = encoder, dropout, teacher_forcing
        self.forget_bias = forget_bias

    # The three things a target type decides: how the decoder reads an element, how wide its output is, the score.
    def input_encoder(self) -> nn.Module:
        return Encoder(self.channels, self.embed_dim, self.encoder_kind)  # decision M10: the decoder's own table

    def output_size(self) -> int:
        return sum(self.channels)

    def score(self, out: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, int]:
        return token_nll(out, targets, mask, self.channels)

    def feedback(self, step: torch.Tensor) -> torch.Tensor:
        """Free-running: the next input from one step's output (R, V) -> (R, C), the most likely tokens."""
        return torch.stack([p.argmax(-1) for p in torch.split(step, list(self.channels), dim=-1)], dim=-1)

    def build(self, core: Core) -> None:
        self.encoder = self.input_encoder()
        self.init = nn.Linear(core.state_size, 2 * self.hidden)  # decision M5
        self.rnn = nn.LSTM(self.embed_dim, self.hidden, self.layers, batch_first=True)
        init_forget_bias(self.rnn, self.forget_bias)
        self.out = feed_forward(self.hidden, self.ffn_hidden, self.output_size(), self.dropout)

    def anchor_range(self, lengths):
        return torch.clamp(lengths, max=self.subseq_len), lengths.clone()  # decision M4: a in [L, len]

    def windows(self, anchors, lengths):
        return reconstruct_windows(anchors, self.aux_truncate)

    def loss(self, main: Main, windows: Windows, start: State, anchors: torch.Tensor):
        _, end = main.run(windows, start)  # the state at each anchor
        positions, mask = reconstruct_targets(anchors, self.subseq_len)  # (R, L), (R, L-1)
        return self.decode(main.core.flatten(end), main.gather(windows.rows, positions), mask)

    def _start(self, state: torch.Tensor):
        h, c = self.init(state).chunk(2, dim=-1)  # (R, hidden) each; decision M5: tanh on h, upper layers zero
        rest = h.new_zeros(self.layers - 1, *h.shape)
        return torch.cat([torch.tanh(h).unsqueeze(0), rest]), torch.cat([c.unsqueeze(0), rest])

    def decode(self, state: torch.Tensor, window: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, int]:
        """state: (R, state_size) flattened main state; window: (R, L, ...) elements; mask: (R, L-1) CPU bool.

        Returns (summed loss, scored count) of predicting ``targets(window)`` (L-1 steps) from the state, the
        decoder reading window[:, :-1] (teacher forcing) or its own guesses from window[:, :1] on.
        """
        hx = self._start(state)
        if self.teacher_forcing:  # decision M7
            out, _ = self.rnn(self.encoder(window[:, :-1]), hx)  # (R, L-1, hidden); decision M6: all L-1 steps
            pred = self.out(out)
        else:  # free-running: each step reads the decoder's own previous guess
            steps, inp = [], window[:, :1]
            for _ in range(window.shape[1] - 1):
                out, hx = self.rnn(self.encoder(inp), hx)
                step = self.out(out)  # (R, 1, V)
                steps.append(step)
                inp = self.feedback(step[:, 0]).unsqueeze(1)
            pred = torch.cat(steps, dim=1)
        return self.score(pred, self.targets(window), mask)
