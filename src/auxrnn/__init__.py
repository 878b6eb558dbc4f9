"""auxrnn: learning long-term dependencies in RNNs with auxiliary losses (Trinh et al., ICML 2018).

Library use (docs/library.md):

    from auxrnn import AuxModel, Reconstruct, Predict
    model = AuxModel(encoder=my_encoder, core=my_lstm, head=my_head,
                     objectives=[Reconstruct(subseq_len=600, aux_truncate=300, channels=(256,))], truncate=300)
    out = model(x, lengths, y, generator=g)     # one step's losses; out.loss.backward()
    logits = model.predict(x, lengths)

    model = auxrnn.load("runs/my_run")      # a trained run with its input preparation (auxrnn.train.trained)
    model.predict(raw_inputs).probs         # (N, n_classes)

The names below load on first use, so that `import auxrnn` (the CLI does) does not import torch.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "auxrnn.core.model": ("AuxModel", "StepOutput"),
    "auxrnn.core.recurrent": ("Core",),
    "auxrnn.core.objectives": ("OBJECTIVES", "Objective", "Main", "Reconstruct", "Predict", "ReconstructValues",
                               "PredictValues"),
    "auxrnn.train.trained": ("load",),
}
_WHERE = {name: module for module, names in _LAZY.items() for name in names}
__all__ = [*_WHERE]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover - what the lazy names are, for type checkers and editors
    from auxrnn.core.model import AuxModel, StepOutput
    from auxrnn.core.objectives import (OBJECTIVES, Main, Objective, Predict, PredictValues, Reconstruct,
                                        ReconstructValues)
    from auxrnn.core.recurrent import Core
    from auxrnn.train.trained import load
