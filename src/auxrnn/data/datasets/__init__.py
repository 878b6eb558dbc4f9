"""One class per dataset (see docs/data.md), registered by name here, and what builds them by name.

A dataset is one class (its name, shape, options, input preparation and CLI flags: base.SequenceDataset)
plus its entry in the tuple below; `register` (../registry.py) refuses a class that lacks any of them.

    base.py    data_root, DatasetInfo, the declared Shape, SequenceDataset, the fetch mixin, the permutation
    mnist.py   MNIST, PMNIST, IDXFolder          cifar.py   CIFAR10        dogs.py    StanfordDogs
    text.py    DBpedia, CSVFolder                 probes.py  CopyMemory, Adding
    arrays.py  NumpyArrays (any .npy folder / .npz; real values quantised by ../quantize.py)
"""
from __future__ import annotations

import dataclasses
import os
import typing

from auxrnn.values import coerce

from .. import delay as _delay
from ..integrity import DownloadError, RemoteFile, atomic_path
from ..array_files import MissingArrayFile
from ..registry import DATASETS, lookup, register
from .arrays import NumpyArrays
from .base import SPLITS, DatasetInfo, SequenceDataset, Shape, check_split, data_root
from .cifar import CIFAR10
from .dogs import DOG_SIDES, StanfordDogs
from .mnist import MNIST, PMNIST, IDXFolder
from .probes import Adding, CopyMemory
from .text import CSVFolder, DBpedia

for _dataset in (MNIST, PMNIST, IDXFolder, CIFAR10, StanfordDogs, DBpedia, CSVFolder, CopyMemory, Adding, NumpyArrays):
    register(_dataset)


def dataset_options(name: str) -> list[str]:
    """The options `load_dataset(name, ...)` accepts besides split and root: the class's own, then the
    sequence transforms every dataset takes (`delay`, `delay_fill`, `delay_seed`: ../delay.py)."""
    return list(lookup(name).option_defaults()) + list(_delay.OPTIONS)


def _check_options(name: str, options: dict) -> type[SequenceDataset]:
    """Refuse unknown options and convert each value to its constructor's type, in place, naming the key."""
    cls = lookup(name)
    allowed = dataset_options(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"dataset {name!r} does not take option(s) {', '.join(unknown)}; valid options: {', '.join(allowed) or '(none)'}"
        )
    hints = {**_option_types(cls), **_delay.OPTION_TYPES}
    for key, value in options.items():
        if key in hints:
            options[key] = _convert(name, key, value, hints[key])
    return cls


def check_options(name: str, options: dict | None = None) -> dict:
    """`options` of dataset `name` converted to their constructor's types; unknown or ill-typed ones raise
    ValueError naming the key (what `load_dataset` would refuse, found without reading any file)."""
    options = dict(options or {})
    _check_options(name, options)
    return options


def _option_types(cls: type[SequenceDataset]) -> dict[str, object]:
    hints: dict[str, object] = {}
    for klass in reversed(cls.__mro__):
        if "__init__" in vars(klass):
            try:
                hints.update(typing.get_type_hints(klass.__init__))
            except (NameError, TypeError):  # an annotation that does not resolve: no conversion for it
                pass
    return hints


def _convert(name: str, key: str, value, hint):
    """`value` as the annotated type, by the one converter every key uses (auxrnn.values.coerce); YAML and the
    command line give strings for what they cannot parse. A str option keeps the word "none" (arrays
    quantiser=none)."""
    try:
        return coerce(f"data.options.{key}", value, hint)
    except ValueError as exc:
        raise ValueError(f"{exc} (dataset {name!r})") from None


def load_dataset(name: str, split: str = "train", root: str | os.PathLike | None = None, **options) -> SequenceDataset:
    """Build dataset `name` for `split` ("train" or "test"), fetching and verifying it if needed."""
    cls = lookup(name)
    check_split(split)
    _check_options(name, options)
    own, delay = _delay.split_options(options)
    ds = cls(split=split, root=root, **own)
    if delay["delay"]:
        ds = _delay.Delayed(ds, delay["delay"], delay["delay_fill"], delay["delay_seed"])
    return ds


def static_info(name: str, options: dict | None = None) -> DatasetInfo | None:
    """The shape of dataset `name` with `options`, known without reading (or fetching) any file.

    None when the files decide it (``idx``; ``arrays``; ``csv`` without ``n_classes``; ``max_len=None``). For the fixed
    datasets it equals the loaded dataset's `info`; for variable-length data `seq_len` is the bound `max_len`
    (the loaded split's longest document, which reaches it when a document is that long). StanfordDogs gives
    the published 120 classes (a loaded subset counts the classes its lists hold). Unknown options raise
    ValueError like `load_dataset`.
    """
    options = dict(options or {})
    cls = _check_options(name, options)
    own, delay = _delay.split_options(options)
    info = cls.static_info(own)
    if info is None or not delay["delay"]:
        return info
    return dataclasses.replace(info, seq_len=info.seq_len + delay["delay"])


__all__ = [
    "DATASETS", "DOG_SIDES", "SPLITS", "Adding", "CIFAR10", "CSVFolder", "CopyMemory", "DBpedia", "DatasetInfo",
    "DownloadError", "IDXFolder", "MNIST", "MissingArrayFile", "NumpyArrays", "PMNIST", "RemoteFile", "SequenceDataset", "Shape", "StanfordDogs",
    "check_options", "data_root", "dataset_options", "load_dataset", "register", "static_info", "atomic_path",
]
