"""A trained run, loaded back for use: its model and its input preparation, with no dataset object.

    import auxrnn
    model = auxrnn.load("runs/mnist")                  # checkpoints/last.pt; checkpoint="best" for best.pt
    pred = model.predict(images)                       # raw uint8 (N, 28, 28) -> Predictions
    pred.probs, pred.labels                            # (N, n_classes) float32, (N,) int64

Everything the run's dataset applied to its files (a permutation, a quantiser, a standardiser) is rebuilt
from the checkpoint's saved data state (`auxrnn.data.preparation.InputPreparation`), so raw inputs go through
exactly the steps the training inputs went through.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from auxrnn.data.preparation import InputPreparation
from auxrnn.train import checkpoint, precision
from auxrnn.train.config import RunConfig, from_dict
from auxrnn.train.cpu import flush_denormals
from auxrnn.train.evaluation import built_model


@dataclass
class Predictions:
    """Class probabilities (N, n_classes) float32 (softmax of the logits) and the most likely class (N,) int64."""

    probs: np.ndarray
    labels: np.ndarray


class TrainedModel:
    """A run's trained model with its input preparation; `predict` takes raw inputs.

    Attributes: module (the torch model, in eval mode), preparation, config (the run's RunConfig),
    checkpoint (the file loaded), step (global steps trained), n_classes, device, precision ("fp32" | "bf16":
    the one the run trained in, saved in its checkpoint).
    """

    def __init__(self, module: torch.nn.Module, preparation: InputPreparation, config: RunConfig, path: Path,
                 step: int, device: torch.device, resolved: str | None = None):
        self.module, self.preparation, self.config = module.eval(), preparation, config
        self.checkpoint, self.step, self.device = path, step, device
        self.precision = resolved or precision.resolve(config.train.precision, device)
        self.n_classes = int(config.model.n_classes)

    @torch.no_grad()
    def predict(self, x, lengths=None, *, batch_size: int | None = None) -> Predictions:
        """Probabilities and labels for raw inputs `x` (see auxrnn.data.preparation for what each source takes).

        x: e.g. uint8 images (N, 28, 28), real values (N, T) / (N, T, C), or N strings for a byte-document
        model; lengths: optional (N,) real lengths. Scored in batches of `batch_size` (default the run's
        data.eval_batch_size); each batch is one chunked no-grad read, so memory stays flat in T.
        """
        inputs, lens = self.preparation(x, lengths)  # (N, T, C), (N,)
        size = self.config.data.eval_batch_size if batch_size is None else batch_size
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"batch_size={size!r} is invalid: give the items per batch, an integer >= 1 (None: the "
                             "run's data.eval_batch_size)")
        probs = []
        with flush_denormals(self.device):  # decision T22
            for s in range(0, inputs.shape[0], size):
                n = lens[s:s + size]
                xb = torch.from_numpy(np.ascontiguousarray(inputs[s:s + size, : int(n.max())]))
                with precision.autocast(self.precision, self.device):
                    logits = self.module.predict(xb.to(self.device), torch.from_numpy(n))
                probs.append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
        p = np.concatenate(probs)
        return Predictions(p, p.argmax(axis=1).astype(np.int64))

    def __repr__(self) -> str:
        c = self.config
        return (f"TrainedModel({c.arch.name}, model.aux={c.model.aux!r}, {self.n_classes} classes, "
                f"data {c.data.name!r} ({self.preparation.kind}), step {self.step}, {self.checkpoint})")


def load(run: str | os.PathLike, checkpoint_name: str | None = None, *, device: str = "cpu") -> TrainedModel:
    """The trained model of `run` (a run folder or a .pt file) with its input preparation.

    checkpoint_name: "last" (default for a folder: checkpoints/last.pt) or "best" (checkpoints/best.pt,
    kept with train.keep_best=true); None with a .pt file. device: "cpu", "cuda", "cuda:N" or "auto".
    """
    from auxrnn.train import distributed

    path = checkpoint.find(run, checkpoint_name)
    ckpt = checkpoint.load(path)
    cfg = from_dict(ckpt["config"])
    d = distributed.pick_device(device)
    module = built_model(ckpt, cfg).to(d)
    prep = InputPreparation.of(cfg.data.name, cfg.data.options, ckpt.get("data", {}), cfg.model.channels)
    return TrainedModel(module, prep, cfg, path, int(ckpt["step"]), d, ckpt.get("precision"))
