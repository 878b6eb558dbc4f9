"""The datasets by name: what `load_dataset`, `static_info`, `InputPreparation.of` and `auxrnn data` look up.

A leaf that imports no dataset module (``datasets/__init__.py`` registers the classes), so that the input
preparation can look a name up without an import circle. A dataset class declares everything a name needs
(shape, options, `preparation`, `cli_flags`); `register` refuses one that cannot serve a run.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .datasets.base import SequenceDataset

DATASETS: dict[str, type[SequenceDataset]] = {}  # name -> class, in registration order


def register(cls: type[SequenceDataset]) -> type[SequenceDataset]:
    """Add dataset class `cls` under its `name`; refuse a class a run could not use (no input preparation,
    CLI flags for options its constructor does not take) or a name already taken."""
    name = getattr(cls, "name", "")
    if not name or name != name.lower():
        raise ValueError(f"dataset class {cls.__name__} needs a lower-case `name`, got {name!r}")
    if DATASETS.get(name, cls) is not cls:
        raise ValueError(f"dataset name {name!r} is taken by {DATASETS[name].__name__}")
    missing = sorted(getattr(cls, "__abstractmethods__", ()))
    if missing:
        raise TypeError(f"dataset {name!r} ({cls.__name__}) does not define {', '.join(missing)}")
    unknown = sorted(set(cls.cli_flags) - set(cls.option_defaults()))
    if unknown:
        raise TypeError(f"dataset {name!r} ({cls.__name__}) has CLI flags for option(s) it does not take: "
                        f"{', '.join(unknown)}")
    DATASETS[name] = cls
    return cls


def lookup(name: str) -> type[SequenceDataset]:
    """The class registered as `name` (any case), or ValueError listing the valid names."""
    key = name.lower()
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid choices: {', '.join(DATASETS)}")
    return DATASETS[key]
