"""The score of real-valued targets: squared error on standardised values (decision M20).

Shared by ReconstructValues and PredictValues. A Gaussian NLL with a learned variance would add a head
whose variance collapses towards 0 on flat stretches of a recording (the loss is unbounded below);
with standardised targets a unit-variance Gaussian NLL is this squared error / 2 plus a constant.
"""
from __future__ import annotations

import torch


class ValueTargets:
    """What a real-valued objective changes in its token twin: C values per step out, squared error as score.

    Listed before the twin (`class PredictValues(ValueTargets, Predict)`); `channels` becomes C, an int.
    """

    real_valued = True

    def output_size(self) -> int:
        return int(self.channels)

    def score(self, out, targets, mask):
        return squared_error(out, targets, mask)


def squared_error(pred: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, int]:
    """pred, targets: (R, L, C); mask: (R, L) CPU bool. Returns (summed squared error, scored values)."""
    m = mask.to(pred.device).unsqueeze(-1)
    err = (pred - targets.to(pred.dtype).reshape(pred.shape)) ** 2
    return (err * m).sum(), int(mask.sum()) * pred.shape[-1]
