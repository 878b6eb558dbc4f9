"""What every auxiliary objective is: anchors, the main network's gradient windows, and a loss.

An objective is a module listed by the user with a weight. The engine (auxrnn.core.model.AuxModel)
asks each one for its anchors and windows, reads the states where all windows start in one chunked
no-grad pass, and hands each objective its start states; the objective recomputes its windows with
autograd through `Main.run` and returns a summed loss and the number of scored values. Its loss enters
the total as ``weight * sum / count`` (decision M9).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, ClassVar

import torch
from torch import nn

from auxrnn.core.anchors import sample_anchors
from auxrnn.core.recurrent import Core, State
from auxrnn.core.windows import Windows


@dataclass
class Main:
    """What an objective may ask of the main network during one step.

    core: the wrapped core (its `flatten`, `readout`, `state_size`, `hidden`).
    x: (B, T, ...) the step's inputs.
    run: ``run(windows, start) -> (outputs (R, W, H) or None, state after each window)``, with autograd
        from the detached `start` states.
    """

    core: Core
    x: torch.Tensor
    run: Callable[[Windows, State], tuple[torch.Tensor | None, State]]

    def gather(self, rows: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """x[rows[r], positions[r, j]]: (R,) and (R, L) CPU int64 -> (R, L, ...). Positions past the end
        (masked targets of a sequence shorter than L) read its last element."""
        positions = positions.clamp(max=self.x.shape[1] - 1)
        return self.x[rows.to(self.x.device).unsqueeze(1), positions.to(self.x.device)]


class Objective(nn.Module):
    """Base of the auxiliary objectives. Subclasses set `name` (registry key) and `attr` (the model's
    attribute for it, the prefix of its state_dict keys) and implement `build`, `anchor_range`,
    `windows` and `loss`.

    Args:
        n_anchors: anchors per example, redrawn every step.
        subseq_len: L, the elements each anchor scores.
        aux_truncate: main-network BPTT steps of this loss (its meaning is the objective's; the supervised
            loss's own truncation is AuxModel's `truncate`).
        weight: factor of this objective's mean loss in the total.
    """

    name: ClassVar[str] = ""
    real_valued: ClassVar[bool] = False  # its targets are real values (auxrnn.core.objectives.values), not tokens
    attr: ClassVar[str] = ""

    def __init__(self, n_anchors: int = 1, subseq_len: int = 600, aux_truncate: int = 300, weight: float = 1.0):
        super().__init__()
        for key, value, least in (("n_anchors", n_anchors, 1), ("subseq_len", subseq_len, 2),
                                  ("aux_truncate", aux_truncate, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{type(self).__name__}: {key}={value!r} is invalid: must be an integer >= {least}")
        if not (isinstance(weight, (int, float)) and math.isfinite(weight) and weight >= 0):
            raise ValueError(f"{type(self).__name__}: weight={weight!r} is invalid: must be a finite number >= 0")
        self.n_anchors, self.subseq_len, self.aux_truncate = n_anchors, subseq_len, aux_truncate
        self.weight = float(weight)
        self.core_state_size: int | None = None

    def bind(self, core: Core) -> None:
        """Build the head for this core (once: an objective belongs to one model)."""
        if self.core_state_size is not None:
            raise ValueError(f"this {type(self).__name__} already belongs to a model: make a new one per model")
        self.core_state_size = core.state_size
        self.build(core)

    def build(self, core: Core) -> None:
        """Create the head's modules, sized for `core` (core.state_size, core.hidden)."""
        raise NotImplementedError

    def anchor_range(self, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inclusive bounds (lo, hi) of the valid anchors. lengths: (B,) CPU int64 -> two (B,) int64."""
        raise NotImplementedError

    @classmethod
    def longest(cls, seq_len: int) -> int:
        """The longest subsequence that fits a sequence of `seq_len` elements."""
        return seq_len

    def sample(self, lengths: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, n_anchors) CPU int64 anchors, uniform over `anchor_range` (decision M4)."""
        lo, hi = self.anchor_range(lengths.long().cpu())
        return sample_anchors(lo, hi, self.n_anchors, generator)

    def windows(self, anchors: torch.Tensor, lengths: torch.Tensor) -> Windows:
        """The main network's gradient windows; the engine provides the state where each starts."""
        raise NotImplementedError

    def loss(self, main: Main, windows: Windows, start: State, anchors: torch.Tensor) -> tuple[torch.Tensor, int]:
        """(summed loss, number of scored values) of one step."""
        raise NotImplementedError

    def targets(self, window: torch.Tensor) -> torch.Tensor:
        """What is scored, from the elements around it: window (R, n+1, ...) -> (R, n, ...) targets.

        window[:, j+1] is the element scored at step j and window[:, j] the one before it, so a target may
        depend on both (e.g. the differences ``window[:, 1:] - window[:, :-1]``). Default: the elements
        themselves. Reconstruct and Predict (and their value twins) score ``targets(window)``.
        """
        return window[:, 1:]
