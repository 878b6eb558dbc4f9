"""Predict (p-LSTM, paper §1.3): an auxiliary LSTM on the main outputs from an anchor on predicts the next elements.

    x:   S_a -> [a .. a+K)[a+K .. a+2K) .. a+L) -> aux LSTM predicts x[a+1 : a+L+1]   a in [0, max(len-L-1, 0)]
         (scored as targets(x[a : a+L+1]): the elements themselves unless an objective says otherwise)
         each segment of K = aux_truncate steps from its own detached state (decision M11)

Targets here are tokens (one softmax per channel, decision M8; head as the decoder's, decision M12);
`PredictValues` (predict_values.py) changes only the output width and the score.
"""
from __future__ import annotations

import torch
from torch import nn

from auxrnn.core.heads import feed_forward, token_nll
from auxrnn.core.objectives.base import Main, Objective
from auxrnn.core.recurrent import Core, State, detach_state, init_forget_bias
from auxrnn.core.windows import Windows, segments


def predict_windows(anchors: torch.Tensor, lengths: torch.Tensor, subseq_len: int) -> Windows:
    """Gradient windows: the steps after each anchor whose next element exists (decision M11). anchors: (B, n)."""
    B, n = anchors.shape
    a = anchors.reshape(-1)
    rows = torch.arange(B).repeat_interleave(n)
    width = torch.clamp(torch.minimum(torch.full_like(a, subseq_len), lengths.long()[rows] - a - 1), min=0)
    return Windows(rows, a, width)


def predict_targets(windows: Windows, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions predicted: ``x[start+1+j]`` for ``j < width``. Returns (R, width) positions and mask."""
    j = torch.arange(width).unsqueeze(0)
    positions = windows.start.unsqueeze(1) + 1 + j
    mask = j < windows.width.unsqueeze(1)
    return torch.where(mask, positions, torch.zeros_like(positions)), mask


class Predict(Objective):
    """p-LSTM: a `layers` x `hidden` LSTM, stacked on the main outputs, predicts the next element.

    The L steps after the anchor are backpropagated in segments of `aux_truncate` steps; main and auxiliary
    LSTM both restart each segment from their detached state where the previous one ended (decision M11).

    Args (beyond Objective's): channels: vocabulary size per input channel; hidden, layers, ffn_hidden,
    dropout, forget_bias: the head's sizes (decisions M12, M17); start: the predictor's first state, "zeros"
    (decision M12) or "main": the main LSTM's (detached) state S_a at the anchor, which needs a main
    nn.LSTM of the predictor's `layers` x `hidden`.
    """

    name, attr = "predict", "predictor"

    def __init__(self, n_anchors=1, subseq_len=600, aux_truncate=300, weight=1.0, *, channels=(256,), hidden=256,
                 layers=2, ffn_hidden=256, dropout=0.0, forget_bias=1.0, start="zeros"):
        super().__init__(n_anchors, subseq_len, aux_truncate, weight)
        if start not in ("zeros", "main"):
            raise ValueError(f"start={start!r}: the predictor starts from 'zeros' or from the 'main' state")
        self.start = start
        self.channels = tuple(channels) if not isinstance(channels, int) else channels
        self.hidden, self.layers, self.ffn_hidden = hidden, layers, ffn_hidden
        self.dropout, self.forget_bias = dropout, forget_bias

    def output_size(self) -> int:
        return sum(self.channels)

    def score(self, out: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, int]:
        return token_nll(out, targets, mask, self.channels)

    def build(self, core: Core) -> None:
        if self.start == "main" and not (isinstance(core.rnn, nn.LSTM) and core.rnn.num_layers == self.layers
                                         and core.hidden == self.hidden and not core.rnn.proj_size):
            raise ValueError(f"start='main' copies the main LSTM's state into the predictor: it needs a main "
                             f"nn.LSTM of {self.layers} x {self.hidden} (the predictor's layers x hidden)")
        self.rnn = nn.LSTM(core.hidden, self.hidden, self.layers, batch_first=True)
        init_forget_bias(self.rnn, self.forget_bias)
        self.out = feed_forward(self.hidden, self.ffn_hidden, self.output_size(), self.dropout)

    def anchor_range(self, lengths):
        hi = torch.clamp(lengths - self.subseq_len - 1, min=0)  # decision M4: a in [0, len-L-1]
        return torch.zeros_like(lengths), hi

    @classmethod
    def longest(cls, seq_len: int) -> int:
        return seq_len - 1  # the element after the last predicted one must exist

    def windows(self, anchors, lengths):
        return predict_windows(anchors, lengths, self.subseq_len)

    def loss(self, main: Main, windows: Windows, start: State, anchors: torch.Tensor):
        total, count = None, 0
        # the predictor's state: zeros, or S_a as nn.LSTM takes it ((B, layers, H) -> (layers, B, H))
        head_state = tuple(s.transpose(0, 1).contiguous() for s in start) if self.start == "main" else None
        for seg in segments(windows, self.aux_truncate):
            main_out, end = main.run(seg, start)  # (R, W, H)
            if main_out is None:
                break
            positions, mask = predict_targets(seg, main_out.shape[1])  # (R, W) each
            before = seg.start.unsqueeze(1)  # (R, 1) the element before the first target, for `targets`
            window = main.gather(seg.rows, torch.cat([before, positions], dim=1))  # (R, W+1, ...)
            out, head_state = self.rnn(main_out, head_state)  # (R, W, hidden)
            s, n = self.score(self.out(out), self.targets(window), mask)
            total, count = (s if total is None else total + s), count + n
            start, head_state = detach_state(end), detach_state(head_state)
        return (total if total is not None else self.out[-1].weight.sum() * 0.0), count
