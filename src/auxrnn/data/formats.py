"""Strict readers of the published dataset formats, returning numpy arrays (no torch here).

Each reader checks what it reads and raises ValueError naming the file and the problem: IDX magic numbers,
dimensions and sizes; CIFAR-10 pickle batches through an unpickler that admits only numpy's array
reconstruction; DBpedia-style CSV rows (a byte-order mark and a class,title,content header
are accepted); StanfordDogs `.mat` lists and JPEG folders.
"""
from __future__ import annotations

import codecs
import importlib.util
import csv
import gzip
import os
import pickle
import struct
import zlib
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .integrity import GZIP_MAGIC, atomic_path

# ------------------------------------------------------------------------------------------- IDX
# type code -> big-endian dtype (LeCun's IDX format: 0x00 0x00 <type> <ndim>, then ndim big-endian uint32)
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IDX_IMAGES_MAGIC = 0x00000803
IDX_LABELS_MAGIC = 0x00000801


def _read_maybe_gzip(path: Path) -> bytes:
    with open(path, "rb") as f:
        head = f.read(2)
    if head != GZIP_MAGIC:
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{path}: corrupt or truncated gzip archive ({exc})") from exc


def read_idx(path: str | os.PathLike, expect_magic: int | None = None) -> np.ndarray:
    """Read an IDX file (raw or gzip) into a native-endian, writable numpy array."""
    path = Path(path)
    data = _read_maybe_gzip(path)
    if len(data) < 4:
        raise ValueError(f"{path}: too short to be an IDX file ({len(data)} bytes)")
    magic = struct.unpack(">I", data[:4])[0]
    zero, code, ndim = magic >> 16, (magic >> 8) & 0xFF, magic & 0xFF
    if zero != 0 or code not in _IDX_TYPES or ndim == 0:
        raise ValueError(f"{path}: bad IDX magic number 0x{magic:08X}")
    if expect_magic is not None and magic != expect_magic:
        raise ValueError(f"{path}: IDX magic number 0x{magic:08X}, expected 0x{expect_magic:08X}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: IDX header truncated (needs {header} bytes, file has {len(data)})")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_IDX_TYPES[code])
    count = int(np.prod(dims, dtype=np.int64))
    payload = len(data) - header
    if payload != count * dtype.itemsize:
        raise ValueError(
            f"{path}: IDX header declares shape {tuple(dims)} ({count * dtype.itemsize} bytes of data) "
            f"but the file holds {payload} bytes of data"
        )
    if count == 0:
        raise ValueError(f"{path}: IDX header declares shape {tuple(dims)}: no items")
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def read_idx_images(path: str | os.PathLike) -> np.ndarray:
    """IDX images: uint8, shape (N, H, W)."""
    arr = read_idx(path, IDX_IMAGES_MAGIC)
    if arr.dtype != np.uint8 or arr.ndim != 3:
        raise ValueError(f"{path}: expected uint8 images of shape (N, H, W), got {arr.dtype} {arr.shape}")
    return arr


def read_idx_labels(path: str | os.PathLike) -> np.ndarray:
    """IDX labels: uint8, shape (N,), returned as int64."""
    arr = read_idx(path, IDX_LABELS_MAGIC)
    if arr.dtype != np.uint8 or arr.ndim != 1:
        raise ValueError(f"{path}: expected uint8 labels of shape (N,), got {arr.dtype} {arr.shape}")
    return arr.astype(np.int64)


def read_idx_pair(images: str | os.PathLike, labels: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    x, y = read_idx_images(images), read_idx_labels(labels)
    if len(x) != len(y):
        raise ValueError(f"{images} holds {len(x)} images but {labels} holds {len(y)} labels")
    return x, y


# ------------------------------------------------------------------------------------- CIFAR-10
def _numpy_globals() -> dict[tuple[str, str], object]:
    try:
        from numpy._core import multiarray as _ma, numeric as _num  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray as _ma, numeric as _num  # type: ignore[no-redef]
    allowed: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # Python 3 writes bytes with protocol <= 2 as _codecs.encode(str, 'latin1'): harmless.
        ("_codecs", "encode"): codecs.encode,
    }
    for mod in ("numpy.core", "numpy._core"):
        allowed[(f"{mod}.multiarray", "_reconstruct")] = _ma._reconstruct
        if hasattr(_num, "_frombuffer"):
            allowed[(f"{mod}.numeric", "_frombuffer")] = _num._frombuffer
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays; every other global is refused."""

    _allowed = _numpy_globals()

    def find_class(self, module: str, name: str):  # noqa: D401
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"forbidden global {module}.{name}") from None


CIFAR_ROW = 3 * 32 * 32


def read_cifar_batch(path: str | os.PathLike, n_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """A CIFAR-10 python batch -> (data uint8 (N, 3072) in the file's R,G,B planes, labels int64 (N,)).

    Checked strictly, structure and values (decision D2).
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            obj = RestrictedUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise
    except Exception as exc:  # UnpicklingError, EOFError, ValueError, TypeError, ...
        raise ValueError(f"{path}: not a valid CIFAR-10 python batch ({type(exc).__name__}: {exc})") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a dict, the pickle holds a {type(obj).__name__}")
    d = {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}
    missing = {"data", "labels"} - set(d)
    if missing:
        raise ValueError(f"{path}: CIFAR-10 batch lacks key(s) {sorted(missing)} (has {sorted(map(str, d))})")
    data, labels = d["data"], d["labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != CIFAR_ROW:
        what = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(f"{path}: 'data' must be a uint8 array of shape (N, {CIFAR_ROW}), got {what}")
    if isinstance(labels, np.ndarray):
        lab = labels
    elif isinstance(labels, list) and all(type(v) is int for v in labels):
        lab = np.asarray(labels, dtype=np.int64)
    else:
        raise ValueError(f"{path}: 'labels' must be a list of ints")
    if lab.ndim != 1 or not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(f"{path}: 'labels' must be one integer per image, got {lab.dtype} {lab.shape}")
    if len(lab) != len(data):
        raise ValueError(f"{path}: {len(data)} images but {len(lab)} labels")
    if len(lab) and (lab.min() < 0 or lab.max() >= n_classes):
        raise ValueError(f"{path}: labels outside 0..{n_classes - 1} (min {lab.min()}, max {lab.max()})")
    return np.ascontiguousarray(data), lab.astype(np.int64)


# -------------------------------------------------------------------------------- DBpedia-style CSV
CSV_HEADER = ("class", "title", "content")


def csv_records(path: Path) -> Iterator[tuple[str, list[str]]]:
    """("<path>, line <n>", fields) of each non-empty row of a CSV (UTF-8, a byte-order mark dropped).

    Bytes that are not UTF-8 are kept as surrogates, so the reader can name the line (`utf8_text`).
    """
    with open(path, "r", encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
        reader = csv.reader(f, strict=True)
        start = 1
        try:
            for row in reader:
                line, start = start, reader.line_num + 1
                if row:
                    yield f"{path}, line {line}", row
        except csv.Error as exc:
            raise ValueError(f"{path}, line {reader.line_num}: malformed CSV ({exc})") from exc


def utf8_text(where: str, text: str) -> bytes:
    """The UTF-8 bytes of `text`; a line holding bytes that are not UTF-8 is refused."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{where}: text is not valid UTF-8") from None


def _csv_rows(path: Path) -> Iterator[tuple[str, list[str]]]:
    """("<path>, line <n>", fields) of each non-empty row of a class,title,content CSV.

    A UTF-8 byte-order mark is dropped; a first row reading ``class,title,content`` (any case, spaces around
    fields ignored) is skipped; any other first row whose class is not an integer is refused as a header.
    """
    first = True
    for where, row in csv_records(path):
        if first:
            first = False
            if tuple(v.strip().lower() for v in row) == CSV_HEADER:
                continue
            try:
                int(row[0])
            except ValueError:
                raise ValueError(
                    f"{where}: class {row[0]!r} is not an integer; this first row looks like a header row. "
                    "Every row must be class,title,content with an integer class (only the exact header "
                    "class,title,content is skipped): delete this row"
                ) from None
        yield where, row


def read_documents(path: str | os.PathLike) -> list[str]:
    """Documents to predict on, read as `read_class_csv` reads them: ``title + " " + content`` of rows
    ``class,title,content`` (class ignored, header rules as training's) or ``title,content`` (a first row
    ``title,content`` is skipped), every row with the same number of fields, text valid UTF-8.
    """
    path = Path(path)
    records = list(csv_records(path))
    if not records:
        raise ValueError(f"{path}: no rows")
    width = len(records[0][1])
    if width == 2 and tuple(v.strip().lower() for v in records[0][1]) == CSV_HEADER[1:]:
        records = records[1:]
    elif width == 3:
        records = list(_csv_rows(path))
    docs = []
    for where, row in records:
        if len(row) != width or width not in (2, 3):
            raise ValueError(f"{where}: {len(row)} fields, but "
                             + (f"the first row has {width}; every row must be " if len(row) != width else "expected ")
                             + "title,content or class,title,content")
        title, content = row[-2:]
        if not title.strip() and not content.strip():
            raise ValueError(f"{where}: empty document (title and content are blank)")
        utf8_text(where, title + content)
        docs.append(f"{title} {content}")
    if not docs:
        raise ValueError(f"{path}: no rows")
    return docs


def _csv_class(where: str, field: str) -> int:
    try:
        return int(field)
    except ValueError:
        raise ValueError(f"{where}: class {field!r} is not an integer") from None


def read_class_csv(
    path: str | os.PathLike, max_len: int | None = None, n_classes: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows `class,title,content` (1-based class; RFC-4180 quoting) -> byte documents.

    The document is the UTF-8 bytes of ``title + " " + content``, cut to its first `max_len` bytes (decision D7).
    Returns (bytes uint8 (total,), offsets int64 (N+1,), labels int64 (N,) 0-based). Without `n_classes`
    the classes run from 1 to the largest one in the file.
    """
    path = Path(path)
    buf = bytearray()
    offsets = [0]
    labels: list[int] = []
    below: tuple[str, int] | None = None  # the first class < 1 when the top is only known at the end
    for where, row in _csv_rows(path):
        if len(row) != 3:
            raise ValueError(f"{where}: expected 3 fields (class,title,content), got {len(row)}")
        cls, title, content = row
        c = _csv_class(where, cls)
        if n_classes is not None and not 1 <= c <= n_classes:
            raise ValueError(f"{where}: class {c} outside 1..{n_classes}")
        if c < 1:
            below = below or (where, c)
            continue
        if not title.strip() and not content.strip():
            raise ValueError(f"{where}: empty document (title and content are blank)")
        doc = utf8_text(where, f"{title} {content}")
        if max_len is not None:
            doc = doc[:max_len]
        buf += doc
        offsets.append(len(buf))
        labels.append(c - 1)
    if below is not None:
        where, c = below
        if not labels:
            raise ValueError(f"{where}: class {c} is below 1 (classes are 1-based; the file holds no class >= 1)")
        top = max(labels) + 1
        raise ValueError(f"{where}: class {c} outside 1..{top} (classes are 1-based; {top} is the largest class "
                         "in the file)")
    if not labels:
        raise ValueError(f"{path}: no rows")
    return (
        np.frombuffer(bytes(buf), dtype=np.uint8).copy(),
        np.asarray(offsets, dtype=np.int64),
        np.asarray(labels, dtype=np.int64),
    )


def max_class_csv(path: str | os.PathLike) -> int:
    """The largest class of a class,title,content CSV (read like `read_class_csv`; 0 for no rows)."""
    return max((_csv_class(where, row[0]) for where, row in _csv_rows(Path(path))), default=0)


# ----------------------------------------------------------------------------------- StanfordDogs
DOGS_EXTRA = "pip install 'auxrnn[dogs]'"


def require_dogs_readers() -> None:
    """StanfordDogs alone needs scipy (its .mat lists) and pillow (its JPEGs): the `dogs` extra."""
    missing = [name for name, module in (("scipy", "scipy.io"), ("pillow", "PIL.Image"))
               if importlib.util.find_spec(module.split(".")[0]) is None]
    if missing:
        raise RuntimeError(f"StanfordDogs needs {' and '.join(missing)}, which auxrnn installs only with its "
                           f"`dogs` extra: {DOGS_EXTRA}")


def read_dogs_list(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """`train_list.mat` / `test_list.mat` -> (relative paths 'breed/img.jpg', labels int64 0-based)."""
    require_dogs_readers()
    import scipy.io

    path = Path(path)
    try:
        m = scipy.io.loadmat(str(path))
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise ValueError(f"{path}: not a readable MATLAB .mat list ({type(exc).__name__}: {exc})") from exc
    for key in ("file_list", "labels"):
        if key not in m:
            raise ValueError(f"{path}: missing variable {key!r}")
    try:
        files = [str(np.asarray(e).ravel()[0]) for e in np.asarray(m["file_list"]).ravel()]
        labels = np.asarray(m["labels"]).ravel()
    except (IndexError, TypeError) as exc:
        raise ValueError(f"{path}: 'file_list' must be a cell array of strings ({exc})") from exc
    if len(files) != len(labels):
        raise ValueError(f"{path}: {len(files)} files but {len(labels)} labels")
    if len(labels) and (np.any(labels != np.round(labels)) or labels.min() < 1):
        raise ValueError(f"{path}: labels must be 1-based integers")
    return files, labels.astype(np.int64) - 1


def decode_resize(path: str | os.PathLike, side: int) -> np.ndarray:
    """One image file -> uint8 (side, side, 3) RGB, resized (bilinear, aspect ratio not kept; decision D6)."""
    require_dogs_readers()
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB").resize((side, side), Image.Resampling.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise ValueError(f"{path}: cannot decode image ({type(exc).__name__}: {exc})") from exc


def build_image_cache(files: Sequence[str | os.PathLike], side: int, dest: str | os.PathLike, progress=None) -> Path:
    """Decode and resize every image once into `dest` (.npy, uint8 (N, side*side, 3)), written atomically."""
    dest = Path(dest)
    with atomic_path(dest, suffix=".npy") as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(files), side * side, 3))
        try:
            for i, f in enumerate(files):
                out[i] = decode_resize(f, side).reshape(side * side, 3)
                if progress is not None:
                    progress.update(1)
            out.flush()
        finally:
            del out
    return dest
