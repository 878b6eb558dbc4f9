"""The input contract every model shares: a batch (B, T[, ...]) of tokens or real values and real lengths (B,)."""
from __future__ import annotations

import torch


def as_steps(x: torch.Tensor) -> torch.Tensor:
    """(B, T) -> (B, T, 1); (B, T, C, ...) as it is. Integer tokens or real values alike."""
    if x.is_complex():
        raise ValueError(f"inputs must be integer tokens or real values, got dtype {x.dtype}")
    if x.dim() == 2:
        return x.unsqueeze(-1)
    if x.dim() < 2:
        raise ValueError(f"inputs must have shape (B, T) or (B, T, C, ...), got {tuple(x.shape)}")
    return x


def check_batch(x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs as (B, T, ...) with a channel axis, and lengths as (B,) CPU int64 values in [1, T]."""
    return check_lengths(as_steps(x), lengths)


def check_lengths(x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (B, T, ...) as given, and lengths as (B,) CPU int64 values in [1, T]."""
    if x.dim() < 2 or x.is_complex():
        raise ValueError(f"inputs must be (B, T, ...) integer tokens or real values, got {tuple(x.shape)} {x.dtype}")
    B, T = x.shape[:2]
    lengths = lengths.long().cpu()
    if lengths.shape != (B,) or bool((lengths < 1).any()) or bool((lengths > T).any()):
        raise ValueError(f"lengths must be (B,)={B} values in [1, T={T}], got {lengths.tolist()[:8]}...")
    return x, lengths
