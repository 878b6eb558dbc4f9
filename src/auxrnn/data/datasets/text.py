"""Byte documents from class,title,content CSV files: DBpedia, and any folder of such files."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

import numpy as np
import torch

from .. import formats, sequences
from ..integrity import (
    RemoteFile,
    Staging,
    atomic_path,
    check_integrity,
    download_remote,
    file_hash,
    find_in,
    matching_remote,
    safe_extract_tar,
    transient,
)
from ..preparation import InputPreparation
from .base import SequenceDataset, Shape, _Fetched


_MAX_LEN_HELP = "keep the first N bytes of each document"


class _ByteDocuments(SequenceDataset):
    """Documents as byte tokens 1..256 (0 = padding), variable length, from class,title,content CSV (decision D7).

    Declared shape: channels (257,), variable length, at most `max_len` steps (None: unbounded); a loaded
    split's `info.seq_len` is its longest document.
    """

    channels, variable_length = (sequences.BYTE_VOCAB,), True
    shape_options: ClassVar[tuple[str, ...]] = ("max_len",)
    _buf: np.ndarray
    _offsets: np.ndarray
    _labels: np.ndarray
    max_len: int | None

    @classmethod
    def shape(cls, *, max_len: int | None, **_: Any) -> Shape:
        return super().shape()._replace(seq_len=None if max_len is None else int(max_len))

    @classmethod
    def preparation(cls, options: dict[str, Any], state: dict[str, np.ndarray],
                    channels: tuple[int, ...]) -> InputPreparation:
        """Documents as byte tokens, cut to the run's `max_len`."""
        max_len = options["max_len"]
        return InputPreparation(cls.name, "bytes", channels, max_len=None if max_len is None else int(max_len))

    def _load_csv(self, path: Path, n_classes: int | None) -> None:
        self._buf, self._offsets, self._labels = formats.read_class_csv(path, self.max_len, n_classes)

    def __len__(self) -> int:
        return int(self._labels.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if i < 0:
            i += len(self)
        a, b = self._offsets[i], self._offsets[i + 1]
        return sequences.bytes_to_tokens(self._buf[a:b]), int(self._labels[i])

    def lengths(self) -> np.ndarray:
        return np.diff(self._offsets)

    def _measure(self) -> dict:
        return {"seq_len": int(self.lengths().max())}

    def extra_repr(self) -> str:
        return f"max_len: {self.max_len}\nmean length: {self.lengths().mean():.1f}"


DBPEDIA_DRIVE_ID = "0Bz8a_Dbh9QhbQ2Vic1kxMmZZQ1k"


class DBpedia(_Fetched, _ByteDocuments):
    """DBpedia ontology (Zhang et al. 2015): `dbpedia_csv/{train,test}.csv`, 14 classes, UTF-8 bytes.

    Fetched on first use (``download=True``), trying in order: the folder `local_dir` (or
    ``$AUXRNN_DBPEDIA_DIR``) holding ``train.csv``/``test.csv`` (or ``dbpedia_csv/``, or the archive
    ``dbpedia_csv.tar.gz``/``dbpedia_csv.tgz``), then each archive of `mirrors`, accepted only when it matches
    its published checksum. The archive is extracted into a temporary folder beside ``raw/`` and its CSV
    files are moved into ``raw/dbpedia_csv/`` only once both are there (and match `extracted_checksums`,
    where any are known).
    """

    name = "dbpedia"
    n_classes = 14
    cli_flags: ClassVar[dict[str, str]] = {"max_len": _MAX_LEN_HELP, "local_dir": "train.csv/test.csv or the archive"}
    archive_names: ClassVar[tuple[str, ...]] = ("dbpedia_csv.tar.gz", "dbpedia_csv.tgz")
    mirrors: ClassVar[list[RemoteFile]] = [
        # plain HTTPS first; sha256 and size from the Hugging Face dbpedia_14 dataset card's download checksums
        RemoteFile(
            "https://s3.amazonaws.com/fast-ai-nlp/dbpedia_csv.tgz",
            sha256="42db5221ddedddb673a4cabcc5f3a7d869714c878bcfe4ba94b29d14aa38e417",
            size=68341743,
            origin="huggingface/datasets: datasets/dbpedia_14/dataset_infos.json",
        ),
        # the authors' Google Drive file; `confirm=t` skips Drive's "cannot scan for viruses" page
        RemoteFile(
            f"https://drive.usercontent.google.com/download?id={DBPEDIA_DRIVE_ID}&export=download&confirm=t",
            md5="dca7b1ae12b1091090db52aa7ec5ca64",
            origin="pytorch/text: torchtext/datasets/dbpedia.py",
        ),
    ]
    # extracted file name -> (algorithm, hex digest); none are published that we could find, so empty
    extracted_checksums: ClassVar[dict[str, tuple[str, str]]] = {}
    csv_files: ClassVar[tuple[str, ...]] = ("train.csv", "test.csv")

    def __init__(
        self,
        split: str = "train",
        root: str | os.PathLike | None = None,
        max_len: int | None = 1024,  # decision D7
        download: bool = True,
        local_dir: str | os.PathLike | None = None,
        mirrors: Sequence[RemoteFile | str] | None = None,
    ):
        super().__init__(split, root)
        self.max_len = None if max_len is None else int(max_len)
        self.local_dir = Path(local_dir).expanduser() if local_dir is not None else None
        given = self.mirrors if mirrors is None else mirrors
        self.mirror_files = [m if isinstance(m, RemoteFile) else RemoteFile(str(m)) for m in given]
        self._ensure(download)
        self._load_csv(self.location / f"{split}.csv", self.n_classes)

    @property
    def location(self) -> Path:
        return self.raw_folder / "dbpedia_csv"

    # ---- files
    def _csv_ok(self, path: Path) -> bool:
        want = self.extracted_checksums.get(path.name)
        if want is None:
            return path.is_file()
        algo, digest = want
        return check_integrity(path, **{algo: digest})

    def check_exists(self) -> bool:
        return all(self._csv_ok(self.location / f) for f in self.csv_files)

    def _not_found(self) -> str:
        need = [self.location / f for f in self.csv_files]
        return f"DBpedia not found: expected {need[0]} and {need[1]}."

    def _manual_hint(self) -> str:
        return (
            "To place the files by hand: get dbpedia_csv.tar.gz (Zhang et al. 2015, 'Character-level Convolutional "
            f"Networks for Text Classification') and extract it into {self.raw_folder}, or name a folder holding "
            "train.csv and test.csv (or the archive) with AUXRNN_DBPEDIA_DIR (or local_dir=...)."
        )

    def _install_from(self, folder: Path, what: str, move: bool = False) -> None:
        """Verify `folder`/{train,test}.csv, then copy (or `move`) them into the cache, each file atomically."""
        srcs = {f: folder / f for f in self.csv_files}
        lacking = [f for f, p in srcs.items() if not p.is_file()]
        if lacking:
            raise FileNotFoundError(f"{what}: no {' or '.join(lacking)} there")
        for f, p in srcs.items():
            want = self.extracted_checksums.get(f)
            if want is not None:
                algo, digest = want
                got = file_hash(p, algo)
                if got != digest.lower():
                    raise ValueError(f"{what}: {f} fails its {algo} check (expected {digest.lower()}, got {got})")
        self.location.mkdir(parents=True, exist_ok=True)
        for f, p in srcs.items():
            if move:
                os.replace(p, self.location / f)
                continue
            with atomic_path(self.location / f) as tmp:
                shutil.copyfile(p, tmp)

    def _install_archive(self, archive: Path) -> None:
        with Staging(self.raw_folder, "dbpedia_csv") as tmp:
            safe_extract_tar(archive, tmp)
            train = find_in(tmp, self.csv_files[0])
            if train is None:
                raise ValueError(f"{archive}: archive holds no {self.csv_files[0]}")
            self._install_from(train.parent, str(archive), move=True)

    def _fetch_from_folder(self, folder: Path) -> None:
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such folder")
        for sub in (folder, folder / "dbpedia_csv"):
            if all((sub / f).is_file() for f in self.csv_files):
                self._install_from(sub, str(sub))
                return
        for name in self.archive_names:
            tar = folder / name
            if tar.is_file():
                if matching_remote(tar, self.mirror_files) is None:
                    raise ValueError(f"{tar}: matches none of the published archive checksums")
                self._install_archive(tar)
                return
        raise FileNotFoundError(f"{folder}: neither train.csv and test.csv nor {' or '.join(self.archive_names)} there")

    def _fetch_from_mirror(self, remote: RemoteFile) -> None:
        if not remote.verified and not all(f in self.extracted_checksums for f in self.csv_files):
            raise ValueError(f"{remote.url}: no published checksum for this archive; refusing unverified data")
        with transient(self.raw_folder / "dbpedia_csv.tar.gz") as tgz:
            download_remote(remote, tgz)
            self._install_archive(tgz)

    def _what(self) -> str:
        return "DBpedia (dbpedia_csv.tar.gz)"

    def sources(self) -> list[tuple[str, Callable[[], None]]]:
        return self._folder_then_mirrors("AUXRNN_DBPEDIA_DIR", self.mirror_files, label=lambda m: m.url)


class CSVFolder(_ByteDocuments):
    """Any `folder/{train,test}.csv` of rows class,title,content; classes inferred (max over both files)."""

    name = "csv"
    shape_options = ("n_classes", "max_len")  # n_classes None: the largest class of both files
    cli_flags: ClassVar[dict[str, str]] = {
        "max_len": _MAX_LEN_HELP,
        "folder": "folder holding the files",
        "n_classes": "number of classes (default: inferred)",
    }

    def __init__(
        self,
        split: str = "train",
        root: str | os.PathLike | None = None,
        folder: str | os.PathLike | None = None,
        n_classes: int | None = None,
        max_len: int | None = 1024,
    ):
        super().__init__(split, root)
        if folder is None:
            raise ValueError("the csv dataset needs option folder=<a folder holding train.csv and test.csv>")
        self.data_folder = Path(folder).expanduser()
        path = self.data_folder / f"{split}.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file (the csv dataset reads <folder>/{{train,test}}.csv)")
        self.max_len = None if max_len is None else int(max_len)
        self.given_classes = None if n_classes is None else int(n_classes)
        try:
            self._load_csv(path, self.given_classes)
        except ValueError as exc:  # most often a table of numbers, which is not what this dataset reads
            raise ValueError(f"{exc}. The csv dataset reads text documents (rows class,title,content); a table of "
                             "numbers goes through data.name=arrays (docs/data.md)") from None
        self._n_classes = self.given_classes
        if self._n_classes is None:
            self._n_classes = int(self._labels.max()) + 1
            other = self.data_folder / ("test.csv" if split == "train" else "train.csv")
            if other.is_file():
                self._n_classes = max(self._n_classes, formats.max_class_csv(other))

    @classmethod
    def shape(cls, *, n_classes: int | None, max_len: int | None, **_: Any) -> Shape:
        return super().shape(max_len=max_len)._replace(n_classes=None if n_classes is None else int(n_classes))

    def _shape_args(self) -> dict[str, Any]:
        return {"n_classes": self.given_classes, "max_len": self.max_len}

    def _measure(self) -> dict:
        return {**super()._measure(), "n_classes": self._n_classes}

    @property
    def location(self) -> Path:
        return self.data_folder
