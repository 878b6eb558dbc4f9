"""ReconstructValues: the r-LSTM on real-valued inputs, rebuilding the standardised values (squared error, decision M20).

Only the decoder's input (a linear map of the C values), its output (C values) and its score differ from
`Reconstruct`; anchors, windows and the decoder's start are Reconstruct's.
"""
from __future__ import annotations

import torch
from torch import nn

from auxrnn.core.objectives.reconstruct import Reconstruct
from auxrnn.core.objectives.values import ValueTargets


class ReconstructValues(ValueTargets, Reconstruct):
    """Reconstruct with real-valued targets. channels: C, the number of values per step (an int)."""

    name, attr = "reconstruct_values", "value_reconstructor"

    def input_encoder(self) -> nn.Module:
        return nn.Linear(int(self.channels), self.embed_dim)

    def feedback(self, step: torch.Tensor) -> torch.Tensor:
        return step  # free-running: the decoder reads its own previous values

    def decode(self, state, window, mask):
        window = window.unsqueeze(-1) if window.dim() == 2 else window  # (R, L) -> (R, L, 1)
        return super().decode(state, window.to(self.init.weight.dtype), mask)
