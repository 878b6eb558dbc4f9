"""auxrnn: learning long-term dependencies in RNNs with auxiliary losses (Trinh et al., ICML 2018).

    model = auxrnn.load("runs/my_run")      # a trained run with its input preparation (auxrnn.train.trained)
    model.predict(raw_inputs).probs         # (N, n_classes)

`load` is imported on first use, so `import auxrnn` stays light.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["load"]


def __getattr__(name: str) -> Any:
    if name != "load":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from auxrnn.train.trained import load

    globals()[name] = load
    return load


if TYPE_CHECKING:  # pragma: no cover
    from auxrnn.train.trained import load
