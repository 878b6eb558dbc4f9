"""PredictValues: the p-LSTM on real-valued inputs, predicting the next standardised values (squared error, decision M20).

Only the output width (C values) and the score differ from `Predict`.
"""
from __future__ import annotations

from auxrnn.core.objectives.predict import Predict
from auxrnn.core.objectives.values import ValueTargets


class PredictValues(ValueTargets, Predict):
    """Predict with real-valued targets. channels: C, the number of values per step (an int)."""

    name, attr = "predict_values", "value_predictor"
