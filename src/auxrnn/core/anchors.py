"""Per-example anchor sampling (paper §1.1: "random anchor positions", redrawn every training step).

Positions use the *count* convention shared with `windows.py`: anchor ``a`` names the main state
``S_a`` reached after consuming ``x[0:a]`` (decision M1).

    reconstruct (r-LSTM):   x[a-L : a] is rebuilt from S_a           a in [min(L, len), len]
    predict     (p-LSTM):   x[a+1 : a+L+1] is predicted from S_a on  a in [0, max(len-L-1, 0)]

Sequences shorter than the subsequence get the longest window that fits (masked later), never an error
(decision M4). The n anchors of an example are independent draws, so two may coincide (decision M18).
"""
from __future__ import annotations

import torch

KINDS = ("reconstruct", "predict")


def anchor_range(lengths: torch.Tensor, subseq_len: int, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Inclusive bounds ``(lo, hi)`` of valid anchors per example. lengths: (B,) int64 -> two (B,) int64."""
    if kind == "reconstruct":
        return torch.clamp(lengths, max=subseq_len), lengths.clone()  # decision M4: a in [L, len]
    if kind == "predict":
        hi = torch.clamp(lengths - subseq_len - 1, min=0)  # decision M4: a in [0, len-L-1]
        return torch.zeros_like(lengths), hi
    raise ValueError(f"unknown anchor kind {kind!r}; choose one of {KINDS}")


def sample_anchors(
    lengths: torch.Tensor, n: int, subseq_len: int, kind: str, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Draw ``n`` anchors per example, uniformly over the valid range (decision M4).

    Args:
        lengths: (B,) int64 on CPU, the real length of each sequence.
        n: anchors per example.
        subseq_len: L, elements reconstructed or predicted at each anchor.
        kind: "reconstruct" or "predict".
        generator: CPU generator owned by the training loop, so runs are reproducible from their seed.
    Returns:
        (B, n) int64 anchors on CPU.
    """
    if n < 1 or subseq_len < 2:
        raise ValueError(f"need n >= 1 anchors and subseq_len >= 2, got n={n}, subseq_len={subseq_len}")
    lo, hi = anchor_range(lengths.long().cpu(), subseq_len, kind)
    u = torch.rand(lengths.shape[0], n, generator=generator, dtype=torch.float64)  # decision M18: with replacement
    span = (hi - lo + 1).unsqueeze(1).double()
    return (lo.unsqueeze(1) + torch.floor(u * span).long()).clamp_(max=hi.unsqueeze(1))
