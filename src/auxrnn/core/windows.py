"""Which steps of the main network get a gradient, as index arithmetic (no tensors of activations).

Every loss has its own window ``[start, start + width)`` of consumed elements. Its gradient flows
through exactly those steps and stops at the (detached) state ``S_start``; other losses recompute their
own windows from their own detached states, so overlapping windows never cut each other's paths.

    x:        0 ........................................................ len
    sup (K):                                           [len-K ....... len) -> classifier
    r-LSTM:               [a-K_aux ...... a) -> S_a -> decoder rebuilds x[a-L : a]
    p-LSTM:                        S_a -> [a ..a+K)[a+K ..a+2K)..a+L) -> aux RNN predicts x[a+1 : a+L+1]
                                          each segment of K_aux steps from its own detached state

`start` and `width` are (R,) int64 CPU tensors; `rows` says which batch row each window reads. The
windows of each auxiliary objective are in its own module (auxrnn.core.objectives).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Windows:
    """R gradient windows. rows, start, width: (R,) int64 on CPU."""

    rows: torch.Tensor
    start: torch.Tensor
    width: torch.Tensor

    @property
    def max_width(self) -> int:
        return int(self.width.max()) if self.width.numel() else 0


def supervised_windows(lengths: torch.Tensor, truncate: int | None) -> Windows:
    """Window of the supervised loss, ending at each sequence's last real element.

    truncate: None for full BPTT, K > 0 for the last K steps, 0 for none (classifier on a detached state).
    """
    lengths = lengths.long().cpu()
    start = torch.zeros_like(lengths) if truncate is None else torch.clamp(lengths - truncate, min=0)
    return Windows(torch.arange(lengths.shape[0]), start, lengths - start)


def segments(windows: Windows, length: int) -> list[Windows]:
    """Cut each window into consecutive segments of at most `length` steps (truncated BPTT inside it;
    decisions M11, B12).

    Segment k of window r covers ``[start + k*length, start + min((k+1)*length, width))``; all segments k
    share one Windows (width 0 where window r is already done), so a segment runs as one batched call.
    """
    n = -(-windows.max_width // length)  # ceil
    return [Windows(windows.rows, windows.start + k * length, torch.clamp(windows.width - k * length, 0, length))
            for k in range(n)]
