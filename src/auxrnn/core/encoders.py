"""Input encoders: integer tokens per channel -> vectors (decision M13).

Pixels stay integers end to end: a uint8 value v is token v (decision D4; no float round trip, unlike the
only earlier reimplementation, which sent 120 of 256 intensities to the wrong token).
"""
from __future__ import annotations

import torch
from torch import nn

ENCODERS = ("embedding", "scalar", "linear")


class Encoder(nn.Module):
    """tokens (..., C) int -> (..., dim); (B, t) is one channel.

    "embedding": the sum of one learned vector per channel (one table, channel offsets), e.g. 256 pixel
    levels, or 3 x 256 for RGB (decision M13). "scalar": a linear map of the values scaled to [0, 1] per
    channel (M13's raw-value option). "linear": a linear map of real values (..., C) as they are
    (standardised floats; `channels` gives only C), the configured model's encoder for real-valued data.
    """

    def __init__(self, channels: tuple[int, ...], dim: int, kind: str = "embedding"):
        super().__init__()
        if kind not in ENCODERS:
            raise ValueError(f"unknown encoder {kind!r}; choose one of {ENCODERS}")
        if not channels or (kind != "linear" and min(channels) < 2):  # linear: real values, any entry (0 = real)
            raise ValueError(f"channels must list a vocabulary size >= 2 per channel, got {channels}")
        self.kind, self.channels = kind, tuple(int(c) for c in channels)
        offsets = torch.tensor([0, *self.channels[:-1]]).cumsum(0)
        self.register_buffer("offsets", offsets, persistent=False)
        if kind == "embedding":
            self.table = nn.Embedding(sum(self.channels), dim)
        elif kind == "linear":
            self.proj = nn.Linear(len(self.channels), dim)
        else:
            self.register_buffer("scale", 1.0 / (torch.tensor(self.channels, dtype=torch.float32) - 1), persistent=False)
            self.proj = nn.Linear(len(self.channels), dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.kind == "linear":
            values = tokens.unsqueeze(-1) if tokens.dim() == 2 else tokens
            if values.shape[-1] != len(self.channels):
                raise ValueError(f"inputs have {values.shape[-1]} values per step, the model expects {len(self.channels)}")
            return self.proj(values.to(self.proj.weight.dtype))
        if tokens.is_floating_point():
            raise ValueError(f"this encoder reads integer tokens (uint8 pixels, int64 ids), got dtype {tokens.dtype}; "
                             "for real values give the model your own encoder, e.g. nn.Linear(C, D)")
        if tokens.dim() == 2:  # (B, t): one channel
            tokens = tokens.unsqueeze(-1)
        if tokens.shape[-1] != len(self.channels):
            raise ValueError(f"inputs have {tokens.shape[-1]} channels per step, the model expects {len(self.channels)}")
        tokens = tokens.long()
        if self.kind == "embedding":
            emb = self.table(tokens + self.offsets)  # (..., C, dim)
            return emb.sum(-2) if len(self.channels) > 1 else emb.squeeze(-2)
        return self.proj(tokens.to(self.proj.weight.dtype) * self.scale.to(self.proj.weight.dtype))
