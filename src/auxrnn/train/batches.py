"""Which examples each step sees: datasets, the per-epoch order, the per-rank slice.

The data order is a pure function, never a stateful sampler (decisions T4, T15):

    epoch e order = permutation of the training set drawn from (seed, e)
    global step s -> epoch e = s // steps_per_epoch, batch b = s % steps_per_epoch
    global batch  = order[b * B : (b + 1) * B]          B = data.batch_size (global), partial tail dropped
    rank r slice  = global batch[r * B/W : (r + 1) * B/W]

so a resumed run needs only the step count to carry on exactly, and the order does not depend on the
number of processes. Evaluation reads the whole split in order, each rank a strided share, and never
drops an example.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from auxrnn.train.config import DataConfig


@dataclass
class Splits:
    train: Dataset
    val: Dataset | None
    test: Dataset
    info: object  # auxrnn.data.DatasetInfo of the full training split
    extra_state: dict  # data state saved with the run (dataset.data_state(): a permutation, a quantiser)


def load_splits(cfg: DataConfig) -> Splits:
    """Train (minus any validation carve-out), validation and test sets for a run."""
    from auxrnn.data import load_dataset
    from auxrnn.data.sequences import LastSteps

    full = load_dataset(cfg.name, "train", root=cfg.root, **cfg.options)
    test = load_dataset(cfg.name, "test", root=cfg.root, **cfg.options)
    keep = held = None
    if cfg.val_size:
        keep, held = carve_validation(cfg, len(full))
        for ds in (full, test):
            fit_like_run(cfg, ds)
    state = full.data_state()
    if cfg.keep_last:
        full, test = LastSteps(full, cfg.keep_last), LastSteps(test, cfg.keep_last)
    train, val = (full, None) if keep is None else (Subset(full, keep), Subset(full, held))
    return Splits(train, val, test, full.info, state)


def carve_validation(cfg: DataConfig, n_train: int) -> tuple[list[int], list[int]]:
    """(training items kept, validation items), each sorted, of a training split of `n_train` items.

    Decision T16: the carve-out has its own seed, so changing train.seed never moves examples between the
    training and validation sets.
    """
    if cfg.val_size >= n_train:
        raise ValueError(f"data.val_size={cfg.val_size} leaves no training examples "
                         f"({n_train} in {cfg.name!r}); choose data.val_size < {n_train}")
    order = np.random.default_rng([cfg.val_seed, 0xDA7A]).permutation(n_train)
    return sorted(order[cfg.val_size:].tolist()), sorted(order[: cfg.val_size].tolist())


def fit_like_run(cfg: DataConfig, ds) -> None:
    """Refit what `ds` fits on its training split (arrays: quantiser, standardiser) on the items the run trains
    on, without its validation carve-out (decision D10); nothing without one. Any split of the run's dataset."""
    if cfg.val_size and ds.fits_inputs:
        ds.fit_inputs(np.asarray(carve_validation(cfg, ds.train_items)[0], dtype=np.int64))


def fixed_subset(ds: Dataset, n: int) -> Dataset | None:
    """n examples of `ds` chosen once by a fixed seed (not train.seed: every run scores the same ones), in
    index order; None for n = 0, all of `ds` when n >= len(ds)."""
    if n <= 0:
        return None
    if n >= len(ds):
        return ds
    return Subset(ds, sorted(np.random.default_rng([0, 0x7EA1]).permutation(len(ds))[:n].tolist()))


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The training order of epoch `epoch`: a permutation of range(n) from (seed, epoch) alone (decision T15)."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    return n_train // batch_size  # decision T15: the partial last batch is dropped


def rank_batches(n_train: int, batch_size: int, seed: int, epoch: int, start: int, rank: int,
                 world: int) -> list[list[int]]:
    """This rank's index lists for batches start, start+1, ... of epoch `epoch` (global batch split: decision T4)."""
    if batch_size % world:
        raise ValueError(f"data.batch_size={batch_size} must be divisible by the number of processes ({world})")
    order = epoch_order(n_train, seed, epoch)
    per = batch_size // world
    out = []
    for b in range(start, steps_per_epoch(n_train, batch_size)):
        chunk = order[b * batch_size:(b + 1) * batch_size]
        out.append(chunk[rank * per:(rank + 1) * per].tolist())
    return out


def _collate(items):
    from auxrnn.data import collate_sequences

    return collate_sequences(items)


def train_batches(ds: Dataset, batch_size: int, seed: int, epoch: int, start: int, rank: int, world: int,
                  workers: int = 0) -> Iterator:
    """Batches (x, lengths, y) of one epoch from batch `start` on, for this rank."""
    sampler = rank_batches(len(ds), batch_size, seed, epoch, start, rank, world)
    # A dedicated generator: DataLoader would otherwise draw its worker base seed from the global torch
    # RNG, and a resumed run would then see different dropout masks than a straight one.
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return iter(DataLoader(ds, batch_sampler=sampler, collate_fn=_collate, num_workers=workers, generator=g))


def eval_batches(ds: Dataset, batch_size: int, rank: int = 0, world: int = 1, workers: int = 0) -> Iterator:
    """Every example of `ds` once across ranks (rank r takes r, r+W, ...), in order, no drop_last (decision T15)."""
    idx = list(range(rank, len(ds), world))
    sampler = [idx[i:i + batch_size] for i in range(0, len(idx), batch_size)]
    return iter(DataLoader(ds, batch_sampler=sampler, collate_fn=_collate, num_workers=workers,
                           generator=torch.Generator().manual_seed(0)))
