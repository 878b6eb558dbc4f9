"""Scoring a model: every example of a split exactly once, summed over ranks, in the run's precision."""
from __future__ import annotations

import logging

import torch

from auxrnn.train import batches, distributed, precision
from auxrnn.train.config import RunConfig, fit_to_data
from auxrnn.train.cpu import cpu_model, flush_denormals

log = logging.getLogger("auxrnn.train")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({cpu_model()}, {torch.get_num_threads()} threads)"


def restored_model(ckpt: dict, cfg: RunConfig, ds, path, *, other_data: bool = False) -> torch.nn.Module:
    """The checkpoint's model (its saved arch.* and model.*), built for `ds` and loaded with its weights.

    The data state the model was trained with (a permutation, a quantiser: decisions T10, D9) must be the one
    `ds` built now, after refitting it on the run's training items (`batches.fit_like_run`, decision D10); with
    `other_data` (another dataset) only what both have is compared, and nothing is refitted.
    """
    if not other_data:
        batches.fit_like_run(cfg.data, ds)
    now = ds.data_state()
    for key, saved in ckpt.get("data", {}).items():
        if key not in now and other_data:
            continue
        if key not in now or not torch.equal(saved, now[key]):
            raise RuntimeError(f"the data {key} of {cfg.data.name!r} {cfg.data.options} differs from the one this "
                               f"model was trained with ({path}); refusing to evaluate")
    fit_to_data(cfg, ds.info)  # the saved channels / n_classes must fit the data
    return built_model(ckpt, cfg)


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
