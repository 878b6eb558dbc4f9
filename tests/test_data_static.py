"""One owner per fact: `static_info` (no file read) against the loaded datasets' `info`; no lookup beside the checkout."""
from __future__ import annotations

import builtins
import io
from dataclasses import replace

import pytest

from auxrnn.data import MNIST, DatasetInfo, DownloadError, load_dataset, static_info
from fixtures_formats import (
    CSV_ROWS,
    REAL_MNIST,
    have_real_mnist,
    small_mnist,
    write_cifar_root,
    write_class_csv,
    write_dogs_list,
    write_dogs_root,
    write_mnist_folder,
)

needs_mnist = pytest.mark.skipif(not have_real_mnist(), reason="set AUXRNN_MNIST_DIR to a folder with the real MNIST files")


@pytest.fixture
def no_files(monkeypatch):
    """Any attempt to open a file fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"static_info opened a file: {args[:1]}")

    monkeypatch.setattr(builtins, "open", refuse)
    monkeypatch.setattr(io, "open", refuse)


def test_static_info_reads_no_file(no_files):
    assert static_info("mnist", {}) == DatasetInfo("mnist", 10, (256,), 784, False)
    assert static_info("pmnist", {"perm_seed": 3}) == DatasetInfo("pmnist", 10, (256,), 784, False)
    assert static_info("cifar10", {"grayscale": True}) == DatasetInfo("cifar10", 10, (256,), 1024, False)
    assert static_info("stanforddogs", {"side": 56}) == DatasetInfo("stanforddogs", 120, (256, 256, 256), 56 * 56, False)
    assert static_info("dbpedia", {}) == DatasetInfo("dbpedia", 14, (257,), 1024, True)
    assert static_info("copy", {"length": 100_000, "k": 4}) == DatasetInfo("copy", 4, (5,), 100_000, False)
    assert static_info("adding", {}) == DatasetInfo("adding", 19, (10, 2), 1000, False)
    # the files decide: unknown without reading them
    assert static_info("idx", {"folder": "/nowhere"}) is None
    assert static_info("csv", {"folder": "/nowhere"}) is None
    assert static_info("csv", {"folder": "/nowhere", "n_classes": 4}) == DatasetInfo("csv", 4, (257,), 1024, True)
    assert static_info("dbpedia", {"max_len": None}) is None


def test_static_info_rejects_what_load_dataset_rejects():
    with pytest.raises(ValueError, match=r"dataset 'cifar10' does not take option\(s\) side; valid options: grayscale"):
        static_info("cifar10", {"side": 40})
    with pytest.raises(ValueError, match=r"unknown dataset 'imagenet'"):
        static_info("imagenet", {})
    with pytest.raises(ValueError, match=r"unknown side 50; valid choices: 40, 48"):
        static_info("stanforddogs", {"side": 50})


# ------------------------------------------------------------------------ static_info == loaded info
@needs_mnist
@pytest.mark.parametrize("name", ["mnist", "pmnist"])
def test_static_info_is_the_loaded_info_mnist(tmp_path_factory, name):
    opts = {"local_dir": REAL_MNIST, "search_local": False, "mirrors": [], "npm": False}
    ds = load_dataset(name, "test", root=tmp_path_factory.getbasetemp() / "mnist_static", **opts)
    assert static_info(name, opts) == ds.info == DatasetInfo(name, 10, (256,), 784, False)


@pytest.mark.parametrize("grayscale", [False, True])
def test_static_info_is_the_loaded_info_cifar10(tmp_path, grayscale):
    write_cifar_root(tmp_path, n=2)
    ds = load_dataset("cifar10", "test", root=tmp_path, download=False, grayscale=grayscale)
    assert static_info("cifar10", {"grayscale": grayscale}) == ds.info
    assert ds[0][0].shape[1:] == (() if grayscale else (3,))


def test_static_info_is_the_loaded_info_stanforddogs(tmp_path):
    info = write_dogs_root(tmp_path)
    small = load_dataset("stanforddogs", "train", root=tmp_path, side=48)
    # a 3-breed subset counts its own classes; everything else is the declaration
    assert small.info == replace(static_info("stanforddogs", {"side": 48}), n_classes=3)
    # lists spanning the published 120 breeds (labels 1, 60, 120): the loaded info is the static one
    relabel = {1: 1, 2: 60, 3: 120}
    for split, (files, labels) in info["lists"].items():
        write_dogs_list(info["raw"] / f"{split}_list.mat", files, [relabel[c] for c in labels])
    for side in (40, 48):
        ds = load_dataset("stanforddogs", "test", root=tmp_path, side=side)
        assert static_info("stanforddogs", {"side": side}) == ds.info
        assert ds[0][0].shape == (side * side, 3)
    files, labels = info["lists"]["test"]
    write_dogs_list(info["raw"] / "test_list.mat", files, [121] + labels[1:])
    with pytest.raises(ValueError, match=r"lists name class 121; StanfordDogs has 120 \(labels 1..120\)"):
        load_dataset("stanforddogs", "train", root=tmp_path, side=40)


def test_static_info_is_the_loaded_info_dbpedia(tmp_path):
    folder = tmp_path / "DBpedia" / "raw" / "dbpedia_csv"
    write_class_csv(folder / "train.csv", CSV_ROWS)
    write_class_csv(folder / "test.csv", CSV_ROWS[:2] + [(14, "Last", "class fourteen")])
    # every fixture document is at least 12 bytes long, so the longest item reaches the bound
    ds = load_dataset("dbpedia", "test", root=tmp_path, max_len=12)
    assert static_info("dbpedia", {"max_len": 12}) == ds.info == DatasetInfo("dbpedia", 14, (257,), 12, True)
    # with the default bound the loaded split reports its longest document, never more than the bound
    full, bound = load_dataset("dbpedia", "train", root=tmp_path), static_info("dbpedia", {})
    assert full.info == replace(bound, seq_len=full.info.seq_len) and full.info.seq_len <= bound.seq_len


def test_static_info_is_the_loaded_info_csv_with_n_classes(tmp_path):
    write_class_csv(tmp_path / "train.csv", [(1, "abc", "def"), (2, "ghi", "jkl")])
    write_class_csv(tmp_path / "test.csv", [(2, "x", "yz")])
    opts = {"folder": tmp_path, "n_classes": 3, "max_len": 4}
    assert static_info("csv", opts) == load_dataset("csv", "train", **opts).info == DatasetInfo("csv", 3, (257,), 4, True)


@pytest.mark.parametrize("name, options", [
    ("copy", {"length": 50, "size": 3}), ("copy", {"length": 7, "k": 3, "noise": 0.5}),
    ("adding", {"length": 100_000, "size": 2}), ("adding", {}),
])
def test_static_info_is_the_loaded_info_probes(name, options):
    ds = load_dataset(name, "train", **options)
    assert static_info(name, options) == ds.info
    x, y = ds[0]
    assert x.shape[0] == ds.info.seq_len and 0 <= y < ds.info.n_classes


# ------------------------------------------------------------------- nothing found beside the checkout
def test_mnist_looks_in_no_folder_beside_the_checkout_or_cwd(tmp_path, monkeypatch):
    """A `shared/data/mnist` next to (or under) the working folder is not a source: only local_dir, the
    environment variables and the data root are."""
    arrays = small_mnist()
    resources = write_mnist_folder(tmp_path / "shared" / "data" / "mnist", arrays, gz=True)
    write_mnist_folder(tmp_path / "work" / "shared" / "data" / "mnist", arrays, gz=True)
    monkeypatch.setattr(MNIST, "resources", resources)
    for var in ("AUXRNN_MNIST_DIR", "AUXRNN_LOCAL_MNIST", "AUXRNN_DATA"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "work").mkdir(exist_ok=True)
    monkeypatch.chdir(tmp_path / "work")
    with pytest.raises(DownloadError, match=r"\(no sources configured\)"):
        load_dataset("mnist", "train", root=tmp_path / "root", mirrors=[], npm=False)
    # the same folder named through the environment is used
    monkeypatch.setenv("AUXRNN_MNIST_DIR", str(tmp_path / "shared" / "data" / "mnist"))
    assert len(load_dataset("mnist", "train", root=tmp_path / "root", mirrors=[], npm=False)) == 12
