"""CIFAR-10 python batches as 1024 steps of an RGB pixel, or of its integer luminance (decision D5)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

import numpy as np

from .. import formats, sequences
from ..integrity import download_url, remove_files, safe_extract_tar
from ..preparation import InputPreparation
from .base import Shape, _ArrayDataset, _Fetched

RGB = (256, 256, 256)


class CIFAR10(_Fetched, _ArrayDataset):
    """CIFAR-10 python batches: 1024 steps of an RGB pixel (T, 3), or of its integer luminance (T,)."""

    name = "cifar10"
    n_classes, channels, seq_len = 10, RGB, 32 * 32  # channels (256,) with grayscale
    shape_options = ("grayscale",)
    cli_flags: ClassVar[dict[str, str]] = {"grayscale": "integer luminance instead of RGB"}
    base_folder = "cifar-10-batches-py"
    archive = ("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a")  # (name, md5): decision D2
    mirrors: ClassVar[list[str]] = ["https://www.cs.toronto.edu/~kriz/"]
    train_list = [f"data_batch_{i}" for i in range(1, 6)]
    test_list = ["test_batch"]

    def __init__(
        self,
        split: str = "train",
        root: str | os.PathLike | None = None,
        grayscale: bool = False,  # decision D5: RGB per step by default
        download: bool = True,
        mirrors: Sequence[str] | None = None,
    ):
        super().__init__(split, root)
        self.grayscale = bool(grayscale)
        self.mirror_urls = list(self.mirrors if mirrors is None else mirrors)
        self._ensure(download)
        parts = [formats.read_cifar_batch(self.batch_folder / b) for b in self._files()]  # decision D2
        rows = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        rgb = sequences.cifar_rows_to_rgb(rows)
        self._set_arrays(sequences.rgb_to_gray(rgb) if self.grayscale else rgb, labels)

    @classmethod
    def preparation(cls, options: dict[str, Any], state: dict[str, np.ndarray],
                    channels: tuple[int, ...]) -> InputPreparation:
        """RGB images, turned gray (decision D5) when the run was."""
        return InputPreparation.images(cls.name, state, channels, gray=bool(options["grayscale"]))

    @classmethod
    def shape(cls, *, grayscale: bool, **_: Any) -> Shape:
        s = super().shape()
        return s._replace(channels=(256,)) if grayscale else s

    @property
    def batch_folder(self) -> Path:
        return self.raw_folder / self.base_folder

    @property
    def location(self) -> Path:
        return self.batch_folder

    def _files(self) -> list[str]:
        return self.train_list if self.split == "train" else self.test_list

    def check_exists(self) -> bool:
        return all((self.batch_folder / b).is_file() for b in self.train_list + self.test_list)

    def _what(self) -> str:
        return "CIFAR-10"

    def _manual_hint(self) -> str:
        name, md5 = self.archive
        return (
            f"To place the files by hand: download {self.mirrors[0]}{name} (md5 {md5}) and extract it "
            f"so that {self.batch_folder}/data_batch_1 ... data_batch_5 and test_batch exist "
            "(or pass root=/ set AUXRNN_DATA to a data root that holds CIFAR10/raw/cifar-10-batches-py)."
        )

    def _fetch(self, base: str) -> None:
        name, md5 = self.archive
        tgz = self.raw_folder / name
        try:
            download_url(base.rstrip("/") + "/" + name, tgz, md5=md5)
            safe_extract_tar(tgz, self.raw_folder)
        except Exception:  # a failed source leaves nothing; Ctrl-C keeps the .part for resuming
            remove_files(tgz, tgz.with_name(tgz.name + ".part"))
            raise
        remove_files(tgz)
        if not self.check_exists():
            raise ValueError(f"{name}: archive does not hold {self.base_folder}/ with all six batches")

    def sources(self) -> list[tuple[str, Callable[[], None]]]:
        return [(f"mirror {m}", lambda m=m: self._fetch(m)) for m in self.mirror_urls]

    def extra_repr(self) -> str:
        return f"grayscale: {self.grayscale}"
