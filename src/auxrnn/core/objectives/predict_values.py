"""PredictValues: the p-LSTM on real-valued inputs, predicting the next standardised values (squared error, decision M20).

Only the output width (C values) and the score differ from `Predict`.
"""
from __future__ import annotations

from auxrnn.core.objectives.predict import Predict
from auxrnn.core.objectives.values import squared_error


class PredictValues(Predict):
    """Predict with real-valued targets. channels: C, the number of values per step (an int)."""

    name, attr = "predict_values", "value_predictor"

    @classmethod
    def from_model(cls, cfg, weight: float = 1.0) -> "PredictValues":
        obj = super().from_model(cfg, weight)
        obj.channels = len(cfg.channels)
        return obj

    def output_size(self) -> int:
        return int(self.channels)

    def score(self, out, targets, mask):
        return squared_error(out, targets, mask)
