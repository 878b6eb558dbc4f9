"""The input contract every model shares: integer tokens (B, T[, C]) and real lengths (B,)."""
from __future__ import annotations

import torch


def as_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, T) or (B, T, C) integer tokens -> (B, T, C). Floats are refused: tokens must be exact integers."""
    if x.is_floating_point() or x.is_complex():
        raise ValueError(f"inputs must be integer tokens (uint8 pixels, int64 ids), got dtype {x.dtype}")
    if x.dim() == 2:
        return x.unsqueeze(-1)
    if x.dim() != 3:
        raise ValueError(f"inputs must have shape (B, T) or (B, T, C), got {tuple(x.shape)}")
    return x


def check_batch(x: torch.Tensor, lengths: torch.Tensor, channels: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens as (B, T, C) with C == len(channels), and lengths as (B,) CPU int64 values in [1, T]."""
    x = as_tokens(x)
    B, T, C = x.shape
    if C != len(channels):
        raise ValueError(f"inputs have {C} channels per step, the model expects {len(channels)}")
    lengths = lengths.long().cpu()
    if lengths.shape != (B,) or bool((lengths < 1).any()) or bool((lengths > T).any()):
        raise ValueError(f"lengths must be (B,)={B} values in [1, T={T}], got {lengths.tolist()[:8]}...")
    return x, lengths
