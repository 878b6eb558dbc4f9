"""What every dataset shares: the data root, `DatasetInfo`, the shape each class declares, the fetch mixin.

Files live under ``<data root>/<ClassName>/raw`` (derived caches under ``.../processed``). The data root
is the `root` argument, else ``$AUXRNN_DATA``, else a per-user cache folder (decision D1). Every item is
``(x, y)``: x a uint8 (or int64) tensor (T,) or (T, C), y an int.
"""
from __future__ import annotations

import inspect
import logging
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, NamedTuple, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .. import sequences
from ..integrity import fetch_lock, folder_from_env, try_sources

if TYPE_CHECKING:
    from ..preparation import InputPreparation

log = logging.getLogger("auxrnn.data")

SPLITS = ("train", "test")


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: `root`, else ``$AUXRNN_DATA``, else the per-user cache folder of auxrnn (decision D1)."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("AUXRNN_DATA")
    if env:
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("auxrnn"))


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    n_classes: int
    channels: tuple[int, ...]  # vocabulary size of each input channel
    # steps per item; for variable-length data, the longest item of the split (from `static_info`: the bound
    # max_len that no item exceeds, which the longest item reaches when some document is that long)
    seq_len: int
    variable_length: bool


class Shape(NamedTuple):
    """A dataset's shape as its class declares it; None where the files decide (measured when loaded)."""

    n_classes: int | None
    channels: tuple[int, ...]
    seq_len: int | None  # for variable-length data: the bound on an item's length (None: unbounded)
    variable_length: bool = False


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid choices: {', '.join(SPLITS)}")
    return split


class SequenceDataset(Dataset, ABC):
    """Common shape: `name`, `split`, `root`, `info`, `__len__`, `__getitem__`, a useful repr.

    The shape is declared once, on the class: the class attributes `n_classes`, `channels`, `seq_len` and
    `variable_length` (None: the files decide), combined with the options named in `shape_options` by the
    classmethod `shape`. `static_info` (no file read) and `info` (of a loaded split) both come from `shape`;
    `info` replaces only what `_measure` reads from the files. The options are the constructor's keyword
    arguments; `preparation` and `cli_flags` say what a trained run and `auxrnn data` need of them, so a
    dataset is its class plus one line in the registry (datasets/__init__.py).
    """

    name: ClassVar[str] = ""
    folder_name: ClassVar[str | None] = None  # default: the class name
    n_classes: ClassVar[int | None] = None
    channels: ClassVar[tuple[int, ...]]  # every class declares it
    seq_len: ClassVar[int | None] = None
    variable_length: ClassVar[bool] = False
    shape_options: ClassVar[tuple[str, ...]] = ()  # options `shape` reads; instances keep them as attributes
    # options `auxrnn data` offers as flags (perm_seed -> --perm-seed; a bool default makes a switch): help line
    cli_flags: ClassVar[dict[str, str]] = {}

    def __init__(self, split: str = "train", root: str | os.PathLike | None = None):
        self.split = check_split(split)
        self.root = data_root(root)

    # ---- options and shape
    @classmethod
    def option_defaults(cls) -> dict[str, Any]:
        """Every option of the constructor besides split and root, with its default, in signature order."""
        out: dict[str, Any] = {}
        for klass in cls.__mro__:
            if "__init__" not in vars(klass):
                continue
            params = inspect.signature(klass.__init__).parameters.values()
            for p in params:
                if p.name in ("self", "split", "root") or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                    continue
                out.setdefault(p.name, p.default)
            if not any(p.kind == p.VAR_KEYWORD for p in params):
                break
        return out

    @classmethod
    def shape(cls, **options: Any) -> Shape:
        """The shape for `options` (those of `shape_options`, defaults filled in), without reading a file."""
        return Shape(cls.n_classes, tuple(cls.channels), cls.seq_len, cls.variable_length)

    @classmethod
    def static_info(cls, options: dict | None = None) -> DatasetInfo | None:
        """The shape for `options` known without reading a file; None when the files decide part of it."""
        full = {**cls.option_defaults(), **(options or {})}
        s = cls.shape(**{k: full[k] for k in cls.shape_options})
        if s.n_classes is None or s.seq_len is None:
            return None
        return DatasetInfo(cls.name, int(s.n_classes), tuple(s.channels), int(s.seq_len), bool(s.variable_length))

    @classmethod
    @abstractmethod
    def preparation(cls, options: dict[str, Any], state: dict[str, np.ndarray],
                    channels: tuple[int, ...]) -> InputPreparation:
        """The steps that turn raw inputs into this dataset's items, from a run's saved data alone.

        `options`: the dataset's own options, defaults filled in (the delay options are applied after, by
        `InputPreparation.of`); `state`: `data_state()` as numpy arrays; `channels`: the model's tokens per
        input channel. Used by `auxrnn.load`, `auxrnn predict` and `auxrnn eval --data`.
        """

    def _shape_args(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.shape_options}

    def _measure(self) -> dict[str, Any]:
        """The fields of `Shape` this split's files decide (the rest is the class's declaration)."""
        return {}

    fits_inputs: ClassVar[bool] = False  # whether `fit_inputs` refits something (the arrays source does)

    def fit_inputs(self, keep) -> None:
        """Refit what is fitted on the training split (a quantiser, a standardiser) on its items `keep` alone.

        A run calls it with the items left after its validation carve-out; nothing is fitted by default.
        """

    def data_state(self) -> dict[str, torch.Tensor]:
        """What a run saves with its checkpoints and must find unchanged on resume and eval.

        Data-derived state that the options alone do not pin down: the pixel permutation of `pmnist`/`idx`
        (decisions D3, T10), the quantiser edges and vocabulary of `arrays` (decision D9). The same for the
        train and the test split; {} by default.
        """
        return {}

    @property
    def info(self) -> DatasetInfo:
        s = self.shape(**self._shape_args())._replace(**self._measure())
        return DatasetInfo(self.name, int(s.n_classes), tuple(s.channels), int(s.seq_len), bool(s.variable_length))

    # ---- files
    @property
    def folder(self) -> Path:
        return self.root / (self.folder_name or type(self).__name__)

    @property
    def raw_folder(self) -> Path:
        return self.folder / "raw"

    @property
    def processed_folder(self) -> Path:
        return self.folder / "processed"

    @property
    def location(self) -> Path:
        """Where this dataset's files live (shown by `auxrnn data info`)."""
        return self.raw_folder

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        i = self.info
        lines = [
            f"Number of items: {len(self)}",
            f"Split: {self.split}",
            f"Location: {self.location}",
            f"Classes: {i.n_classes}, channels: {i.channels}, "
            f"sequence length: {i.seq_len}{' (variable)' if i.variable_length else ''}",
        ]
        extra = self.extra_repr()
        if extra:
            lines += extra.splitlines()
        return f"{type(self).__name__} ({self.name})\n" + "\n".join("    " + s for s in lines)


class _Fetched:
    """A dataset fetched on first use from the first of its `sources()` that works, verified before install.

    Subclasses give `check_exists`, `sources` and the two message parts `_not_found` and `_manual_hint`.
    """

    name: ClassVar[str]
    raw_folder: Path

    def _what(self) -> str:
        return f"{type(self).__name__} files"

    def _not_found(self) -> str:
        return f"{type(self).__name__} not found or incomplete under {self.raw_folder}."

    def _manual_hint(self) -> str:
        raise NotImplementedError

    def check_exists(self) -> bool:
        raise NotImplementedError

    def sources(self) -> list[tuple[str, Callable[[], None]]]:
        raise NotImplementedError

    def _ensure(self, download: bool) -> None:
        """Fetch the files if they are missing, or say how to get them when `download` is off."""
        if self.check_exists():
            return
        if not download:
            raise RuntimeError(f"{self._not_found()} Fetch it with `auxrnn data fetch {self.name}` (from Python: "
                               f"download=True). {self._manual_hint()}")
        self.download()

    def download(self) -> None:
        """Fetch, verify and install the files; returns at once when they are already there.

        The fetch holds the data root's lock for this folder (`fetch_lock`); whoever waited for it checks
        again and finds the files another process fetched meanwhile.
        """
        if self.check_exists():
            return
        with fetch_lock(self.root, self.folder.name):
            if self.check_exists():
                return
            self.raw_folder.mkdir(parents=True, exist_ok=True)
            try_sources(self._what(), self.sources(), f"{self._not_found()} {self._manual_hint()}")

    def _folder_then_mirrors(self, env: str, mirrors: Sequence, label: Callable = str):
        """Sources: the local folder (`local_dir` or $env) through `_fetch_from_folder`, then each mirror."""
        out = []
        local = folder_from_env(self.local_dir, env)
        if local is not None:
            out.append((f"local folder {local}", lambda: self._fetch_from_folder(local)))
        return out + [(f"mirror {label(m)}", lambda m=m: self._fetch_from_mirror(m)) for m in mirrors]


# ------------------------------------------------------------------------------------ fixed arrays
class _ArrayDataset(SequenceDataset):
    """Items from a whole uint8 array x (N, T[, C]) and int64 labels y (N,).

    x is an in-memory tensor, or a read-only memory-mapped numpy array (a resized cache, ../resize.py) whose
    rows are read one item at a time; `_step_order` (int64 (T,)), when set, reorders each item's steps as it
    is read, so a permuted memory-mapped set is never copied whole into memory.
    """

    _x: torch.Tensor | np.memmap
    _y: torch.Tensor
    _step_order: torch.Tensor | None = None

    def _set_arrays(self, x, y) -> None:
        """Keep x and y, checking them against what the class declares (its sequence length and classes)."""
        declared = self.shape(**self._shape_args())
        if declared.seq_len is not None and x.shape[1] != declared.seq_len:
            raise ValueError(f"{self.location}: {type(self).__name__} items have {x.shape[1]} steps, "
                             f"expected {declared.seq_len}")
        top = int(y.max(initial=0))
        if declared.n_classes is not None and top >= declared.n_classes:
            raise ValueError(f"{self.location}: {type(self).__name__} labels must be 0..{declared.n_classes - 1}, "
                             f"found {top}")
        self._x = x if isinstance(x, np.memmap) else torch.from_numpy(x)
        self._y = torch.from_numpy(y)

    def __len__(self) -> int:
        return int(self._y.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = self._x[i]
        if isinstance(x, np.ndarray):
            x = torch.from_numpy(np.array(x))
        if self._step_order is not None:
            x = x[self._step_order]
        return x, int(self._y[i])


class _PixelPermutation:
    """Option `perm_seed` of an image source: every item's steps reordered by one fixed permutation.

    The permutation is ``sequences.make_permutation(T, perm_seed)``, drawn from its own seed and never from the
    training seed (decisions D3, T10); it is exposed as `.permutation` (int64 (T,), None without one) so a
    run saves it in its checkpoints and checks it on resume and eval.
    """

    _x: torch.Tensor
    perm_seed: int | None = None
    permutation: torch.Tensor | None = None

    def _permute_steps(self, perm_seed: int | None) -> None:
        self.perm_seed = None if perm_seed is None else int(perm_seed)
        if self.perm_seed is None:
            return
        self.permutation = sequences.make_permutation(int(self._x.shape[1]), self.perm_seed)
        if isinstance(self._x, np.memmap):
            self._step_order = self.permutation  # permuted per item as it is read
        else:
            self._x = self._x[:, self.permutation].contiguous()

    def data_state(self) -> dict[str, torch.Tensor]:
        """{"permutation": int64 (T,)} when the steps are permuted, else {}."""
        if self.permutation is None:
            return {}
        return {"permutation": self.permutation.to(torch.int64).clone()}

    def extra_repr(self) -> str:
        return "" if self.perm_seed is None else f"perm_seed: {self.perm_seed}"
