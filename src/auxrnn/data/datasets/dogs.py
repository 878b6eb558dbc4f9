"""StanfordDogs: JPEG folders and .mat lists, resized once to side x side RGB and cached (decision D6)."""
from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

import numpy as np
import torch

from .. import formats
from ..integrity import (
    RemoteFile,
    Staging,
    atomic_path,
    check_integrity,
    download_remote,
    find_in,
    safe_extract_tar,
    transient,
)
from ..preparation import InputPreparation
from .base import SequenceDataset, Shape, _Fetched

DOG_SIDES = (40, 48, 56, 72, 80, 96, 112, 128)  # decision D6: T = 1600 ... 16384


class StanfordDogs(_Fetched, SequenceDataset):
    """StanfordDogs: `Images/<breed>/*.jpg` + `train_list.mat`/`test_list.mat`, resized to side x side RGB.

    Fetched on first use (``download=True``), trying in order: the folder `local_dir` (or
    ``$AUXRNN_STANFORDDOGS_DIR``) holding ``images.tar`` and ``lists.tar`` (or the extracted ``*_list.mat``), then each
    base URL of `mirrors`. Archives are accepted only when their sha256 matches `archives`; they are extracted
    into a temporary folder beside ``raw/`` and moved into place only once complete.

    Each image is decoded and resized once into ``processed/<split>_<side>_<listhash>.npy`` (uint8
    (N, side*side, 3), written atomically); items are read from it memory-mapped.
    """

    name = "stanforddogs"
    # the published lists hold 120 breeds; a loaded dataset counts the classes its lists hold (max label + 1)
    n_classes, channels = 120, (256, 256, 256)  # RGB; seq_len = side * side
    shape_options = ("side",)
    cli_flags: ClassVar[dict[str, str]] = {
        "side": "image side, one of 40 48 56 72 80 96 112 128",
        "local_dir": "images.tar and lists.tar",
    }
    # (archive name, sha256, size in bytes): published in tensorflow_datasets' url_checksums/stanford_dogs.txt
    archives: ClassVar[list[tuple[str, str, int | None]]] = [
        ("lists.tar", "34b47cacd9a98b5d150e084f24d29391c084c55272295ec65c85651bc35f4d6c", 481280),
        ("images.tar", "a443fc2f9a851aa1a7b8e4fa4af94b8459fce2c9f5a2f4dd4669cf9673a4ec58", 793579520),
    ]
    mirrors: ClassVar[list[str]] = ["http://vision.stanford.edu/aditya86/ImageNetDogs/"]
    urls = (
        "http://vision.stanford.edu/aditya86/ImageNetDogs/images.tar",
        "http://vision.stanford.edu/aditya86/ImageNetDogs/lists.tar",
    )

    def __init__(
        self,
        split: str = "train",
        root: str | os.PathLike | None = None,
        side: int = 40,
        progress: bool | None = None,
        download: bool = True,
        local_dir: str | os.PathLike | None = None,
        mirrors: Sequence[str] | None = None,
    ):
        super().__init__(split, root)
        formats.require_dogs_readers()  # before fetching 800 MB it could not read
        self.side = self._check_side(side)
        self.local_dir = Path(local_dir).expanduser() if local_dir is not None else None
        self.mirror_urls = list(self.mirrors if mirrors is None else mirrors)
        self._ensure(download)
        files, labels = formats.read_dogs_list(self.raw_folder / f"{split}_list.mat")  # official lists, decision D6
        other = "test" if split == "train" else "train"
        top = int(labels.max(initial=0))
        if (self.raw_folder / f"{other}_list.mat").is_file():
            top = max(top, int(formats.read_dogs_list(self.raw_folder / f"{other}_list.mat")[1].max(initial=0)))
        if top >= self.n_classes:
            raise ValueError(f"{self.raw_folder}: the {split}/{other} lists name class {top + 1}; StanfordDogs has "
                             f"{self.n_classes} (labels 1..{self.n_classes})")
        self._n_classes = top + 1
        self._y = torch.from_numpy(labels)
        self.files = files
        digest = hashlib.sha256("\n".join(files).encode()).hexdigest()[:12]
        self.cache_path = self.processed_folder / f"{split}_{self.side}_{digest}.npy"
        if not self.cache_path.is_file():
            self._build_cache(progress)
        self._x = np.load(self.cache_path, mmap_mode="r")
        declared = self.shape(side=self.side)
        if self._x.shape != (len(files), declared.seq_len, len(declared.channels)) or self._x.dtype != np.uint8:
            raise ValueError(f"{self.cache_path}: cache has shape {self._x.shape}, {self._x.dtype}; delete it to rebuild")

    @staticmethod
    def _check_side(side: Any) -> int:
        if int(side) not in DOG_SIDES:
            raise ValueError(f"unknown side {side!r}; valid choices: {', '.join(map(str, DOG_SIDES))}")
        return int(side)

    @classmethod
    def shape(cls, *, side: int, **_: Any) -> Shape:
        return super().shape()._replace(seq_len=cls._check_side(side) ** 2)

    @classmethod
    def preparation(cls, options: dict[str, Any], state: dict[str, np.ndarray],
                    channels: tuple[int, ...]) -> InputPreparation:
        """RGB images as given: `side` resizes the jpgs the dataset decodes, raw inputs come at their size."""
        return InputPreparation.images(cls.name, state, channels)

    def _measure(self) -> dict:
        return {"n_classes": self._n_classes}

    def _build_cache(self, progress: bool | None) -> None:
        images = self.raw_folder / "Images"
        paths = []
        for rel in self.files:
            breed = rel.replace("\\", "/").split("/")[0]
            if not (images / breed).is_dir():
                raise FileNotFoundError(f"{images / breed}: class folder missing (listed in {self.split}_list.mat as {rel})")
            p = images / rel
            if not p.is_file():
                raise FileNotFoundError(f"{p}: image missing (list entry {rel} of {self.split}_list.mat)")
            paths.append(p)
        from tqdm.auto import tqdm

        disable = (not sys.stderr.isatty()) if progress is None else not progress
        with tqdm(total=len(paths), desc=f"StanfordDogs {self.split} {self.side}px", disable=disable, leave=False) as bar:
            formats.build_image_cache(paths, self.side, self.cache_path, progress=bar)

    # ---- files
    def _need(self) -> list[Path]:
        return [self.raw_folder / "Images", self.raw_folder / "train_list.mat", self.raw_folder / "test_list.mat"]

    def _installed(self, archive: str) -> bool:
        if archive == "images.tar":
            return (self.raw_folder / "Images").is_dir()
        return all((self.raw_folder / f).is_file() for f in ("train_list.mat", "test_list.mat"))

    def check_exists(self) -> bool:
        return all(self._installed(name) for name, _, _ in self.archives)

    def _not_found(self) -> str:
        missing = [str(p) for p in self._need() if not p.exists()]
        return f"StanfordDogs not found (missing: {', '.join(missing)})."

    def _manual_hint(self) -> str:
        return (
            f"To place the files by hand: download {self.urls[0]} and {self.urls[1]} and extract both into "
            f"{self.raw_folder} (giving Images/<breed>/*.jpg, train_list.mat, test_list.mat), or name a folder "
            "holding images.tar and lists.tar with AUXRNN_STANFORDDOGS_DIR (or local_dir=...)."
        )

    def _install(self, archive_name: str, archive: Path) -> None:
        """Extract a verified archive beside raw/ and move its contents into place."""
        with Staging(self.raw_folder, archive_name) as tmp:
            safe_extract_tar(archive, tmp)
            if archive_name == "images.tar":
                images = find_in(tmp, "Images", want_dir=True)
                if images is None:
                    raise ValueError(f"{archive}: archive holds no Images/ folder")
                os.replace(images, self.raw_folder / "Images")
            else:
                found = {f: find_in(tmp, f) for f in ("file_list.mat", "train_list.mat", "test_list.mat")}
                lacking = [f for f in ("train_list.mat", "test_list.mat") if found[f] is None]
                if lacking:
                    raise ValueError(f"{archive}: archive lacks {', '.join(lacking)}")
                for f, src in found.items():
                    if src is not None:
                        os.replace(src, self.raw_folder / f)

    def _fetch_from_folder(self, folder: Path) -> None:
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such folder")
        for name, sha, _ in self.archives:
            if self._installed(name):
                continue
            tar = folder / name
            if tar.is_file():
                if not check_integrity(tar, sha256=sha):
                    raise ValueError(f"{tar}: fails its sha256 check (expected {sha})")
                self._install(name, tar)
            elif name == "images.tar" and (folder / "Images").is_dir():
                raise ValueError(f"{folder}: holds an extracted Images/ folder; images.tar is needed to verify it "
                                 f"(or copy Images/ into {self.raw_folder} yourself)")
            elif name == "lists.tar" and all((folder / f).is_file() for f in ("train_list.mat", "test_list.mat")):
                for f in ("file_list.mat", "train_list.mat", "test_list.mat"):
                    if (folder / f).is_file():
                        with atomic_path(self.raw_folder / f) as t:
                            shutil.copyfile(folder / f, t)
            else:
                raise FileNotFoundError(f"{folder}: no {name} there")

    def _fetch_from_mirror(self, base: str) -> None:
        for name, sha, size in self.archives:
            if self._installed(name):
                continue
            with transient(self.raw_folder / name) as tar:
                download_remote(RemoteFile(base.rstrip("/") + "/" + name, sha256=sha, size=size), tar)
                self._install(name, tar)

    def _what(self) -> str:
        return "StanfordDogs archives (images.tar, lists.tar)"

    def sources(self) -> list[tuple[str, Callable[[], None]]]:
        return self._folder_then_mirrors("AUXRNN_STANFORDDOGS_DIR", self.mirror_urls)

    def __len__(self) -> int:
        return int(self._y.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.from_numpy(np.array(self._x[i])), int(self._y[i])

    def extra_repr(self) -> str:
        return f"side: {self.side}\ncache: {self.cache_path}"

