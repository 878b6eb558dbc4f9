"""Pieces the heads share: the paper's feed-forward network and the per-channel token loss.

The auxiliary heads themselves live with their objectives (auxrnn.core.objectives): a 2-layer LSTM-256
followed by an FFN (256, 256) and one softmax per input channel (paper §2; decisions M8, M12).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def feed_forward(d_in: int, d_hidden: int, d_out: int, dropout: float = 0.0) -> nn.Sequential:
    """Two hidden layers with ReLU (the paper's "2-layer FFN (256, 256)"), then a linear output (decision M14)."""
    return nn.Sequential(
        nn.Linear(d_in, d_hidden), nn.ReLU(), nn.Dropout(dropout),  # decision M14: ReLU, dropout 0 by default
        nn.Linear(d_hidden, d_hidden), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(d_hidden, d_out),
    )


def token_nll(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, channels: tuple[int, ...]
) -> tuple[torch.Tensor, int]:
    """Summed cross entropy over real targets, one softmax per channel (decision M8).

    Args:
        logits: (R, L, sum(channels)); targets: (R, L, C) or (R, L) int; mask: (R, L) CPU bool.
    Returns:
        (sum of negative log-likelihoods, number of scored tokens counting each channel).
    """
    if targets.dim() == logits.dim() - 1:  # (R, L): one channel
        targets = targets.unsqueeze(-1)
    m = mask.to(logits.device)
    total = logits.new_zeros(())
    for c, piece in enumerate(torch.split(logits, list(channels), dim=-1)):
        nll = F.cross_entropy(piece.reshape(-1, piece.shape[-1]), targets[..., c].reshape(-1).long(), reduction="none")
        total = total + (nll * m.reshape(-1)).sum()
    return total, int(mask.sum()) * len(channels)
