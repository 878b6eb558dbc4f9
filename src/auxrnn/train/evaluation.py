"""Scoring a model: every example of a split exactly once, summed over ranks, in the run's precision."""
from __future__ import annotations

import dataclasses
import logging

import numpy as np
import torch

from auxrnn.train import batches, distributed, precision
from auxrnn.train.config import RunConfig, fit_to_data, from_dict
from auxrnn.train.cpu import cpu_model, flush_denormals

log = logging.getLogger("auxrnn.train")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    n = torch.get_num_threads()
    return f"cpu ({cpu_model()}, {n} thread{'' if n == 1 else 's'})"


# Options that say where a dataset's files come from, not what its inputs are: never carried to another dataset.
LOCATION_OPTIONS = ("folder", "path", "download", "local_dir", "search_local", "mirrors", "npm", "progress")


def carried_options(name: str, options: dict, other: str) -> dict:
    """The options of a run on dataset `name` that scoring it on dataset `other` keeps.

    Every option of the run (its dataset's defaults filled in, so pmnist's default perm_seed is one) that `other`
    takes, except where files come from: the run's permutation, resize, delay or grayscale go with it, and an
    option added later goes too unless it only locates files.
    """
    from auxrnn.data.datasets import DATASETS, dataset_options

    full = {**DATASETS[name].option_defaults(), **options}
    takes = set(dataset_options(other))
    return {k: v for k, v in full.items() if k in takes and k not in LOCATION_OPTIONS}


def restored_model(ckpt: dict, cfg: RunConfig, ds, path, *, other_data: bool = False) -> torch.nn.Module:
    """The checkpoint's model (its saved arch.* and model.*), built for `ds` and loaded with its weights.

    The data state the model was trained with (a permutation, a quantiser: decisions T10, D9) must be the one
    `ds` built now, after refitting it on the run's training items (`batches.fit_like_run`, decision D10). With
    `other_data` (another dataset) nothing is refitted, and the input preparation `ds` applies must be the run's
    (`auxrnn.data.preparation.InputPreparation`, every step it knows): a permutation the run had and `ds` lacks
    is refused, never skipped.
    """
    if not other_data:
        batches.fit_like_run(cfg.data, ds)
    now = ds.data_state()
    for key, saved in ckpt.get("data", {}).items():
        if key not in now:
            raise RuntimeError(f"the model was trained on inputs with a {key}, which {cfg.data.name!r} "
                               f"{cfg.data.options} does not apply ({path}); refusing to evaluate")
        if not torch.equal(saved, now[key]):
            raise RuntimeError(f"the data {key} of {cfg.data.name!r} {cfg.data.options} differs from the one this "
                               f"model was trained with ({path}); refusing to evaluate")
    if other_data:
        same_preparation(from_dict(ckpt["config"]), ckpt.get("data", {}), cfg, now, path)
    fit_to_data(cfg, ds.info)  # the saved channels / n_classes must fit the data
    return built_model(ckpt, cfg)


def same_preparation(run: RunConfig, saved: dict, cfg: RunConfig, now: dict, path) -> None:
    """Refuse scoring on a dataset whose inputs are prepared otherwise than the run's (a resize, a delay, ...)."""
    from auxrnn.data.preparation import InputPreparation

    def prep(c: RunConfig, state: dict) -> dict:
        p = InputPreparation.of(c.data.name, c.data.options, state, c.model.channels)
        return {f.name: getattr(p, f.name) for f in dataclasses.fields(p) if f.name != "source"}

    before, after = prep(run, saved), prep(cfg, now)
    for key in before:
        if not _same(before[key], after[key]):
            raise RuntimeError(f"the model was trained on {run.data.name!r} inputs with {key} {before[key]!r}; "
                               f"{cfg.data.name!r} {cfg.data.options} gives {key} {after[key]!r} ({path}); set "
                               f"data.options to match, or evaluate on {run.data.name!r}; refusing to evaluate")


def _same(a, b) -> bool:
    """Equality of preparation fields: arrays by value, objects (a quantiser) by their attributes."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and np.array_equal(a, b)
    if hasattr(a, "__dict__") and type(a) is type(b):
        return vars(a).keys() == vars(b).keys() and all(_same(vars(a)[k], vars(b)[k]) for k in vars(a))
    return a == b


def built_model(ckpt: dict, cfg: RunConfig) -> torch.nn.Module:
    """The model `cfg` describes (its saved arch.* and model.*, fitted to the data), with the checkpoint's weights.

    For scoring only: an objective whose package is not installed here is left out, with a logged note.
    """
    from auxrnn import models

    model, note = models.build_trained(cfg.model, cfg.arch, ckpt["model"])
    if note:
        log.warning(note)
    return model


@torch.no_grad()
def evaluate(model: torch.nn.Module, ds, cfg: RunConfig, d: distributed.Dist,
             resolved: str | None = None) -> tuple[int, int]:
    """(correct, count) over every example of `ds`, summed over ranks. count == len(ds) always (decision T15).

    `resolved` is the run's precision ("fp32" | "bf16"); None resolves cfg.train.precision on this device.
    """
    resolved = resolved or precision.resolve(cfg.train.precision, d.device)
    was_training = model.training
    model.eval()
    correct = count = 0
    with flush_denormals(d.device):  # decision T22
        for x, lengths, y in batches.eval_batches(ds, cfg.data.eval_batch_size, d.rank, d.world_size, cfg.data.workers):
            with precision.autocast(resolved, d.device):
                logits = model.predict(x.to(d.device, non_blocking=True), lengths)
            correct += int((logits.argmax(-1).cpu() == y).sum())
            count += int(y.numel())
    model.train(was_training)
    correct, count = (int(v) for v in distributed.all_reduce([correct, count], d))
    assert count == len(ds), f"evaluation scored {count} of {len(ds)} examples"
    return correct, count
