"""Which steps of the main network get a gradient, as index arithmetic (no tensors of activations).

Every loss has its own window ``[start, start + width)`` of consumed elements. Its gradient flows
through exactly those steps and stops at the (detached) state ``S_start``; other losses recompute their
own windows from their own detached states, so overlapping windows never cut each other's paths.

    x:        0 ........................................................ len
    sup (K):                                           [len-K ....... len) -> classifier
    r-LSTM:               [a-K_aux ...... a) -> S_a -> decoder rebuilds x[a-L : a]
    p-LSTM:                        S_a -> [a ..a+K)[a+K ..a+2K)..a+L) -> aux RNN predicts x[a+1 : a+L+1]
                                          each segment of K_aux steps from its own detached state

`start` and `width` are (R,) int64 CPU tensors; `rows` says which batch row each window reads.
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
    if truncate is not None and truncate < 0:
        raise ValueError(f"truncate must be None (full), 0 or positive, got {truncate}")
    lengths = lengths.long().cpu()
    start = torch.zeros_like(lengths) if truncate is None else torch.clamp(lengths - truncate, min=0)
    return Windows(torch.arange(lengths.shape[0]), start, lengths - start)


def reconstruct_windows(anchors: torch.Tensor, aux_truncate: int) -> Windows:
    """Gradient windows of the r-LSTM loss: the ``aux_truncate`` steps before each anchor. anchors: (B, n)."""
    if aux_truncate < 1:
        raise ValueError(f"aux_truncate must be >= 1, got {aux_truncate}")
    B, n = anchors.shape
    a = anchors.reshape(-1)
    start = torch.clamp(a - aux_truncate, min=0)
    return Windows(torch.arange(B).repeat_interleave(n), start, a - start)


def predict_windows(anchors: torch.Tensor, lengths: torch.Tensor, subseq_len: int) -> Windows:
    """Gradient windows of the p-LSTM loss: the steps after each anchor whose next element exists (decision M11)."""
    B, n = anchors.shape
    a = anchors.reshape(-1)
    rows = torch.arange(B).repeat_interleave(n)
    width = torch.clamp(torch.minimum(torch.full_like(a, subseq_len), lengths.long()[rows] - a - 1), min=0)
    return Windows(rows, a, width)


def segments(windows: Windows, length: int) -> list[Windows]:
    """Cut each window into consecutive segments of at most `length` steps (truncated BPTT inside it;
    decisions M11, B12).

    Segment k of window r covers ``[start + k*length, start + min((k+1)*length, width))``; all segments k
    share one Windows (width 0 where window r is already done), so a segment runs as one batched call.
    """
    if length < 1:
        raise ValueError(f"segment length must be >= 1, got {length}")
    n = -(-windows.max_width // length)  # ceil
    return [Windows(windows.rows, windows.start + k * length, torch.clamp(windows.width - k * length, 0, length))
            for k in range(n)]


def reconstruct_targets(anchors: torch.Tensor, subseq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions the r-LSTM decoder reads, and which of its predictions count (decisions M2, M3).

    The decoder is fed ``x[p_0], ..., x[p_{L-2}]`` and predicts ``x[p_1], ..., x[p_{L-1}]`` where
    ``p_j = a - L + j``: the L elements just before the anchor (decision M2), L-1 scored tokens (decision M3).
    Near the start the window shrinks to ``a`` elements and is left-aligned (decision M4).

    Returns:
        positions: (R, L) int64, clamped to valid indices.
        mask: (R, L-1) bool, True where the target ``x[p_{j+1}]`` is real.
    """
    a = anchors.reshape(-1, 1)
    span = torch.clamp(a, max=subseq_len)  # (R, 1) elements actually available
    j = torch.arange(subseq_len).unsqueeze(0)
    positions = torch.clamp(a - span + j, min=0)
    mask = (j[:, 1:] < span)
    return positions, mask


def predict_targets(windows: Windows, subseq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions the p-LSTM predicts: ``x[a+1+j]`` for ``j < width``. Returns (R, L) positions and mask."""
    j = torch.arange(subseq_len).unsqueeze(0)
    positions = windows.start.unsqueeze(1) + 1 + j
    mask = j < windows.width.unsqueeze(1)
    return torch.where(mask, positions, torch.zeros_like(positions)), mask
