"""Auxiliary objectives: one class per module, registered below by its import and its entry.

    reconstruct.py         Reconstruct         r-LSTM: rebuild the L tokens before an anchor
    predict.py             Predict             p-LSTM: predict the L tokens after an anchor
    reconstruct_values.py  ReconstructValues   r-LSTM on real values (squared error, decision M20)
    predict_values.py      PredictValues       p-LSTM on real values

A new objective subclasses `Objective` (base.py) in its own module and adds two lines here: its import and
its entry in OBJECTIVES. An objective of another package registers through the entry-point group
"auxrnn.objectives" instead; auxrnn.models.objectives finds both and builds them from a run's model.*.
"""
from auxrnn.core.objectives.base import Main, Objective
from auxrnn.core.objectives.predict import Predict
from auxrnn.core.objectives.predict_values import PredictValues
from auxrnn.core.objectives.reconstruct import Reconstruct
from auxrnn.core.objectives.reconstruct_values import ReconstructValues

OBJECTIVES: dict[str, type[Objective]] = {
    Reconstruct.name: Reconstruct,
    Predict.name: Predict,
    ReconstructValues.name: ReconstructValues,
    PredictValues.name: PredictValues,
}

__all__ = ["OBJECTIVES", "Main", "Objective", "Predict", "PredictValues", "Reconstruct", "ReconstructValues"]
