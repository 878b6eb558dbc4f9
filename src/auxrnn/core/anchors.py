"""Per-example anchor sampling (paper §1.1: "random anchor positions", redrawn every training step).

Positions use the *count* convention shared with `windows.py`: anchor ``a`` names the main state
``S_a`` reached after consuming ``x[0:a]`` (decision M1). Each objective says which anchors are valid
(its `anchor_range`); this module only draws from those ranges. The n anchors of an example are
independent draws, so two may coincide (decision M18).
"""
from __future__ import annotations

import torch


def sample_anchors(lo: torch.Tensor, hi: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw ``n`` anchors per example, uniformly over the inclusive range ``[lo, hi]`` (decision M4).

    Args:
        lo, hi: (B,) int64 on CPU, the valid anchors of each example (hi >= lo).
        n: anchors per example.
        generator: CPU generator owned by the training loop, so runs are reproducible from their seed.
    Returns:
        (B, n) int64 anchors on CPU.
    """
    u = torch.rand(lo.shape[0], n, generator=generator, dtype=torch.float64)  # decision M18: with replacement
    span = (hi - lo + 1).unsqueeze(1).double()
    return (lo.unsqueeze(1) + torch.floor(u * span).long()).clamp_(max=hi.unsqueeze(1))
