"""Datasets through `load_dataset`: real MNIST, fixtures of every other format, probes, batching."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from auxrnn.data import integrity as _integrity


@pytest.fixture(autouse=True)
def _no_retry_wait(monkeypatch):
    monkeypatch.setattr(_integrity, "RETRY_BACKOFF", 0.0)
import torch

from auxrnn.data import (
    DatasetInfo,
    collate_sequences,
    data_root,
    dataset_options,
    load_dataset,
    make_permutation,
    pixels_to_tokens,
)
from auxrnn.data import formats
from auxrnn.data.integrity import check_integrity
from auxrnn.data.sequences import rgb_to_gray
from fixtures_formats import (
    CSV_ROWS,
    DOG_BREEDS,
    REAL_MNIST,
    have_real_mnist,
    small_mnist,
    write_cifar_root,
    write_class_csv,
    write_dogs_list,
    write_dogs_root,
    write_idx,
    write_mnist_folder,
)

needs_mnist = pytest.mark.skipif(not have_real_mnist(), reason="set AUXRNN_MNIST_DIR to a folder with the real MNIST files")


@pytest.fixture(scope="module")
def mnist_root(tmp_path_factory):
    return tmp_path_factory.mktemp("mnist_root")


def _mnist(split, root, **kw):
    return load_dataset("mnist", split, root=root, local_dir=REAL_MNIST, search_local=False, mirrors=[], npm=False, **kw)


# ------------------------------------------------------------------------------------------ MNIST
@needs_mnist
def test_real_mnist(mnist_root):
    from auxrnn.data import MNIST

    train = _mnist("train", mnist_root)
    test = _mnist("test", mnist_root)
    assert len(train) == 60_000 and len(test) == 10_000
    assert [train[i][1] for i in range(10)] == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    x, y = train[0]
    assert x.dtype == torch.uint8 and x.shape == (784,) and isinstance(y, int)
    assert train.info == DatasetInfo("mnist", 10, (256,), 784, False)
    for name, sha in MNIST.resources:
        assert check_integrity(mnist_root / "MNIST" / "raw" / name, sha256=sha)
    assert sorted(p.name for p in (mnist_root / "MNIST" / "raw").iterdir()) == sorted(n for n, _ in MNIST.resources)
    assert abs(train._x.double().mean().item() / 255 - 0.1307) < 1e-4
    assert "Number of items: 60000" in repr(train) and str(mnist_root) in repr(train)


@needs_mnist
def test_real_pmnist_permutation(mnist_root):
    torch.manual_seed(1)
    a = load_dataset("pmnist", "test", root=mnist_root, local_dir=REAL_MNIST, mirrors=[], npm=False)
    torch.manual_seed(2)  # the training seed must not matter
    b = load_dataset("pmnist", "test", root=mnist_root, local_dir=REAL_MNIST, mirrors=[], npm=False)
    c = load_dataset("pmnist", "test", root=mnist_root, local_dir=REAL_MNIST, mirrors=[], npm=False, perm_seed=1)
    plain = _mnist("test", mnist_root)
    assert torch.equal(a.permutation, b.permutation) and not torch.equal(a.permutation, c.permutation)
    assert sorted(a.permutation.tolist()) == list(range(784))
    x, y = a[3]
    assert torch.equal(x, plain[3][0][a.permutation]) and y == plain[3][1]
    assert "perm_seed: 0" in repr(a)


@pytest.mark.slow
def test_permutation_identical_across_processes():
    code = "import torch;from auxrnn.data import make_permutation;print(make_permutation(784, 0).tolist())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert eval(out) == make_permutation(784, 0).tolist()


# ------------------------------------------------------------------------------------ any IDX folder
def test_idx_folder_and_tokens(tmp_path):
    arrays = small_mnist()
    arrays["t10k-labels-idx1-ubyte"][:] = 0
    arrays["train-labels-idx1-ubyte"][-1] = 12  # classes = max label + 1 over both splits
    write_mnist_folder(tmp_path, arrays, gz=False)
    ds = load_dataset("idx", "train", folder=tmp_path)
    te = load_dataset("idx", "test", folder=tmp_path)
    assert ds.info.n_classes == 13 and te.info.n_classes == 13
    x, lengths, y = collate_sequences([ds[0], ds[1]])
    assert x.dtype == torch.int64 and x.shape == (2, 784) and lengths.tolist() == [784, 784]
    assert x[0, :256].tolist() == list(range(256))  # value v is token v for all 256 values
    assert pixels_to_tokens(torch.arange(256, dtype=torch.uint8)).tolist() == list(range(256))


def test_idx_folder_count_mismatch_and_missing(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 28, 28), np.uint8), gz=True)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(4, np.uint8), gz=True)
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz holds 3 images but .*train-labels-idx1-ubyte.gz holds 4"):
        load_dataset("idx", "train", folder=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no test images file"):
        load_dataset("idx", "test", folder=tmp_path)
    with pytest.raises(ValueError, match=r"needs option folder"):
        load_dataset("idx", "train")


def _fake_mnist_files(tmp_path, monkeypatch):
    """Small MNIST-format files in tmp_path/src, accepted as MNIST (resources patched to their checksums)."""
    from auxrnn.data import MNIST

    src = tmp_path / "src"
    monkeypatch.setattr(MNIST, "resources", write_mnist_folder(src, small_mnist(), gz=True))
    return src


def test_idx_perm_seed_gives_pmnist_sequences(tmp_path, monkeypatch):
    src = _fake_mnist_files(tmp_path, monkeypatch)
    for split in ("train", "test"):
        torch.manual_seed(1)
        pm = load_dataset("pmnist", split, root=tmp_path / "root", local_dir=src, search_local=False, mirrors=[],
                          npm=False)
        torch.manual_seed(2)  # the training seed must not matter
        ix = load_dataset("idx", split, folder=src, perm_seed=0)
        assert torch.equal(ix.permutation, pm.permutation) and ix.permutation.dtype == torch.int64
        assert len(ix) == len(pm) and all(torch.equal(ix[i][0], pm[i][0]) and ix[i][1] == pm[i][1] for i in range(len(pm)))
        assert "perm_seed: 0" in repr(ix)
    plain = load_dataset("idx", "train", folder=src)
    assert plain.permutation is None and plain.perm_seed is None and "perm_seed:" not in repr(plain)
    other = load_dataset("idx", "train", folder=src, perm_seed=5)
    assert torch.equal(other[0][0], plain[0][0][make_permutation(784, 5)])
    assert dataset_options("idx") == ["folder", "perm_seed", "side", "delay", "delay_fill", "delay_seed"]


def test_idx_permutation_is_saved_like_pmnist(tmp_path, monkeypatch):
    """The run saves `permutation` into its checkpoints (extra_state) and checks it on resume and eval."""
    from types import SimpleNamespace

    from auxrnn.train.batches import load_splits

    src = _fake_mnist_files(tmp_path, monkeypatch)

    def cfg(name, **options):
        return SimpleNamespace(name=name, root=str(tmp_path / "root"), options=options, val_size=0, val_seed=0, keep_last=0)

    pm = load_splits(cfg("pmnist", local_dir=str(src), search_local=False, mirrors=[], npm=False))
    ix = load_splits(cfg("idx", folder=str(src), perm_seed=0))
    assert torch.equal(ix.extra_state["permutation"], pm.extra_state["permutation"])
    assert "permutation" not in load_splits(cfg("idx", folder=str(src))).extra_state


@needs_mnist
def test_real_idx_perm_seed_is_pmnist(mnist_root):
    pm = load_dataset("pmnist", "test", root=mnist_root, local_dir=REAL_MNIST, mirrors=[], npm=False, perm_seed=0)
    ix = load_dataset("idx", "test", folder=REAL_MNIST, perm_seed=0)
    assert torch.equal(ix._x, pm._x) and torch.equal(ix._y, pm._y) and torch.equal(ix.permutation, pm.permutation)
    assert ix.info == DatasetInfo("idx", 10, (256,), 784, False)


# --------------------------------------------------------------------------------------- CIFAR-10
def test_cifar10_rgb_and_grayscale(tmp_path):
    batches = write_cifar_root(tmp_path, n=4)
    tr = load_dataset("cifar10", "train", root=tmp_path, download=False)
    te = load_dataset("cifar10", "test", root=tmp_path, download=False, grayscale=True)
    assert len(tr) == 20 and len(te) == 4
    assert tr.info == DatasetInfo("cifar10", 10, (256, 256, 256), 1024, False)
    assert te.info == DatasetInfo("cifar10", 10, (256,), 1024, False)
    row = batches["data_batch_2"][b"data"][1]
    x, y = tr[4 + 1]
    assert x.dtype == torch.uint8 and x.shape == (1024, 3) and y == batches["data_batch_2"][b"labels"][1]
    for p in (0, 31, 32, 500, 1023):  # pixel p of the 32x32 row-major image: (R, G, B) from the three planes
        assert x[p].tolist() == [row[p], row[1024 + p], row[2048 + p]]
    g, _ = te[2]
    trow = batches["test_batch"][b"data"][2]
    assert g.shape == (1024,) and g.dtype == torch.uint8
    for p in (0, 77, 1023):
        r, gg, b = int(trow[p]), int(trow[1024 + p]), int(trow[2048 + p])
        assert g[p].item() == (299 * r + 587 * gg + 114 * b + 500) // 1000


def test_gray_formula_keeps_gray_values():
    v = np.arange(256, dtype=np.uint8)
    assert rgb_to_gray(np.stack([v, v, v], -1)).tolist() == list(range(256))


def test_cifar10_missing_explains_manual_placement(tmp_path):
    with pytest.raises(RuntimeError, match=r"cifar-10-python.tar.gz \(md5 c58f30108f718f92721af3b95e74349a\).*cifar-10-batches-py"):
        load_dataset("cifar10", "train", root=tmp_path, download=False)
    from auxrnn.data import DownloadError

    with pytest.raises(DownloadError, match=r"every source failed:\n  - mirror http://127.0.0.1:9/"):
        load_dataset("cifar10", "train", root=tmp_path, mirrors=["http://127.0.0.1:9/"])  # closed port
    assert list((tmp_path / "CIFAR10" / "raw").iterdir()) == []


@pytest.mark.parametrize("name", ["mnist", "pmnist", "cifar10"])
def test_missing_dataset_without_download_names_the_fetch_command_and_the_manual_way(tmp_path, monkeypatch, name):
    monkeypatch.setenv("AUXRNN_MNIST_DIR", str(tmp_path / "nowhere"))
    kwargs = {"search_local": False} if "mnist" in name else {}
    with pytest.raises(RuntimeError, match=rf"not found.*Fetch it with `auxrnn data fetch {name}` \(from Python: "
                                           r"download=True\)\. To place"):
        load_dataset(name, "train", root=tmp_path, download=False, **kwargs)


def test_cifar10_bad_batch_in_dataset(tmp_path):
    write_cifar_root(tmp_path, n=2)
    (tmp_path / "CIFAR10" / "raw" / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"\x80\x02}q\x00")
    with pytest.raises(ValueError, match=r"data_batch_3: not a valid CIFAR-10 python batch"):
        load_dataset("cifar10", "train", root=tmp_path, download=False)


# ----------------------------------------------------------------------------------- StanfordDogs
def test_stanforddogs_cache(tmp_path, monkeypatch):
    info = write_dogs_root(tmp_path)
    ds = load_dataset("stanforddogs", "train", root=tmp_path, side=48)
    assert len(ds) == 6 and ds.info == DatasetInfo("stanforddogs", 3, (256, 256, 256), 48 * 48, False)
    files, labels = info["lists"]["train"]
    for i in (0, 3, 5):
        x, y = ds[i]
        assert x.dtype == torch.uint8 and x.shape == (48 * 48, 3) and y == labels[i] - 1
        colour = np.array(info["colours"][files[i]])
        assert np.abs(x.numpy().astype(int) - colour).max() <= 3  # a solid JPEG colour survives resizing
    assert ds.cache_path.is_file() and ds.cache_path.parent.name == "processed"
    assert isinstance(ds._x, np.memmap)
    # the second construction streams from the cache and decodes no JPEG
    monkeypatch.setattr(formats, "decode_resize", lambda *a: (_ for _ in ()).throw(AssertionError("decoded")))
    again = load_dataset("stanforddogs", "train", root=tmp_path, side=48)
    assert torch.equal(again[2][0], ds[2][0])
    with pytest.raises(ValueError, match=r"unknown side 50; valid choices: 40, 48, 56, 72, 80, 96, 112, 128"):
        load_dataset("stanforddogs", "train", root=tmp_path, side=50)


def _processed(tmp_path):
    folder = tmp_path / "StanfordDogs" / "processed"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_stanforddogs_missing_class_folder_and_entry(tmp_path):
    info = write_dogs_root(tmp_path)
    raw = info["raw"]
    files, labels = info["lists"]["test"]
    write_dogs_list(raw / "test_list.mat", files + ["n02099999-Unknown_dog/n02099999_1.jpg"], labels + [3])
    with pytest.raises(FileNotFoundError, match=r"n02099999-Unknown_dog: class folder missing \(listed in test_list.mat"):
        load_dataset("stanforddogs", "test", root=tmp_path)
    write_dogs_list(raw / "test_list.mat", files + [f"{DOG_BREEDS[0]}/nope.jpg"], labels + [1])
    with pytest.raises(FileNotFoundError, match=r"nope.jpg: image missing \(list entry .*nope.jpg of test_list.mat\)"):
        load_dataset("stanforddogs", "test", root=tmp_path)
    assert _processed(tmp_path) == []


def test_stanforddogs_corrupt_jpeg_leaves_no_cache(tmp_path):
    info = write_dogs_root(tmp_path)
    bad = info["raw"] / "Images" / info["lists"]["train"][0][-1]
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ValueError, match=r"cannot decode image"):
        load_dataset("stanforddogs", "train", root=tmp_path, side=40)
    assert _processed(tmp_path) == []


def test_stanforddogs_not_placed(tmp_path):
    with pytest.raises(RuntimeError, match=r"StanfordDogs not found .*images.tar.*lists.tar"):
        load_dataset("stanforddogs", "train", root=tmp_path, download=False)


# ------------------------------------------------------------------------------------ DBpedia / CSV
def test_dbpedia_bytes_and_collate(tmp_path):
    folder = tmp_path / "DBpedia" / "raw" / "dbpedia_csv"
    write_class_csv(folder / "train.csv", CSV_ROWS)
    write_class_csv(folder / "test.csv", CSV_ROWS[:2] + [(14, "Last", "class fourteen")])
    tr = load_dataset("dbpedia", "train", root=tmp_path)
    te = load_dataset("dbpedia", "test", root=tmp_path, max_len=12)
    assert len(tr) == 5 and tr.info.n_classes == 14 and tr.info.channels == (257,) and tr.info.variable_length
    x, y = tr[3]
    text = f"{CSV_ROWS[3][1]} {CSV_ROWS[3][2]}".encode("utf-8")
    assert x.dtype == torch.int64 and x.tolist() == [b + 1 for b in text] and y == 0
    assert min(x.min().item() for x, _ in tr) >= 1
    assert te[2][1] == 13 and te.info.seq_len == 12
    xb, lengths, yb = collate_sequences([tr[0], tr[4], tr[1]])
    assert xb.dtype == lengths.dtype == yb.dtype == torch.int64
    assert xb.shape == (3, int(lengths.max())) and lengths.tolist() == [len(tr[i][0]) for i in (0, 4, 1)]
    assert (xb[1, lengths[1]:] == 0).all() and torch.equal(xb[1, : lengths[1]], tr[4][0])
    assert yb.tolist() == [0, 1, 1]


def test_dbpedia_class_out_of_range(tmp_path):
    folder = tmp_path / "DBpedia" / "raw" / "dbpedia_csv"
    write_class_csv(folder / "train.csv", [(15, "a", "b")])
    write_class_csv(folder / "test.csv", [(1, "a", "b")])
    with pytest.raises(ValueError, match=r"train.csv, line 1: class 15 outside 1..14"):
        load_dataset("dbpedia", "train", root=tmp_path)


def test_csv_folder_infers_classes(tmp_path):
    write_class_csv(tmp_path / "train.csv", [(1, "a", "b"), (2, "c", "d")])
    write_class_csv(tmp_path / "test.csv", [(5, "e", "f")])
    assert load_dataset("csv", "train", folder=tmp_path).info.n_classes == 5
    assert load_dataset("csv", "train", folder=tmp_path, n_classes=7).info.n_classes == 7
    with pytest.raises(ValueError, match=r"class 5 outside 1..3"):
        load_dataset("csv", "test", folder=tmp_path, n_classes=3)


def test_csv_undecodable_in_dataset(tmp_path):
    (tmp_path / "train.csv").write_bytes(b'1,"fine","ok"\n1,"\xc3\x28","x"\n')
    with pytest.raises(ValueError, match=r"train.csv, line 2: text is not valid UTF-8"):
        load_dataset("csv", "train", folder=tmp_path)


def test_csv_folder_sloppy_files(tmp_path):
    """A byte-order mark and a class,title,content header are accepted in either file; any other header is
    refused with the fix; class 0 names the actual top class."""
    (tmp_path / "train.csv").write_bytes(b"\xef\xbb\xbfclass,title,content\n" + b'1,"a","bc"\n2,"d","e"\n')
    (tmp_path / "test.csv").write_bytes(b"\xef\xbb\xbf" + b'Class,Title,Content\r\n4,"x","y"\r\n')
    tr = load_dataset("csv", "train", folder=tmp_path)
    assert len(tr) == 2 and tr.info.n_classes == 4 and tr[0][0].tolist() == [b + 1 for b in b"a bc"]
    assert load_dataset("csv", "test", folder=tmp_path)[0][1] == 3
    (tmp_path / "test.csv").write_bytes(b'label,text,body\n4,"x","y"\n')
    with pytest.raises(ValueError, match=r"test.csv, line 1: class 'label' is not an integer; this first row looks "
                                         r"like a header row.*delete this row"):
        load_dataset("csv", "train", folder=tmp_path)  # the other file is read for its largest class
    (tmp_path / "test.csv").write_bytes(b'0,"x","y"\n2,"z","w"\n')
    with pytest.raises(ValueError, match=r"test.csv, line 1: class 0 outside 1\.\.2 "):
        load_dataset("csv", "test", folder=tmp_path)


def test_a_table_of_numbers_in_csv_is_pointed_to_arrays(tmp_path):
    (tmp_path / "train.csv").write_text("1,0.5,0.7,0.9\n2,0.1,0.2,0.3\n")
    with pytest.raises(ValueError, match=r"train.csv, line 1: expected 3 fields .*The csv dataset reads text "
                                         r"documents \(rows class,title,content\); a table of numbers goes through "
                                         r"data.name=arrays"):
        load_dataset("csv", "train", folder=tmp_path)


def test_dbpedia_with_byte_order_mark_and_header(tmp_path):
    folder = tmp_path / "DBpedia" / "raw" / "dbpedia_csv"
    write_class_csv(folder / "train.csv", CSV_ROWS)
    write_class_csv(folder / "test.csv", CSV_ROWS[:2])
    (folder / "train.csv").write_bytes(b"\xef\xbb\xbfclass,title,content\n" + (folder / "train.csv").read_bytes())
    ds = load_dataset("dbpedia", "train", root=tmp_path)
    assert len(ds) == 5 and ds[0][1] == 0 and ds[0][0].tolist()[:3] == [b + 1 for b in b"E. "]
    (folder / "test.csv").write_bytes(b'0,"a","b"\n')
    with pytest.raises(ValueError, match=r"test.csv, line 1: class 0 outside 1\.\.14$"):
        load_dataset("dbpedia", "test", root=tmp_path)


# ------------------------------------------------------------------------------------------ probes
def test_copy_probe_deterministic_and_long():
    a = load_dataset("copy", "train", length=100_000, size=50, seed=3)
    b = load_dataset("copy", "train", length=100_000, size=50, seed=3)
    c = load_dataset("copy", "train", length=100_000, size=50, seed=4)
    xa, ya = a[7]
    xb, yb = b[7]
    assert torch.equal(xa, xb) and ya == yb
    assert any(not torch.equal(a[i][0], c[i][0]) for i in range(5))
    assert xa.shape == (100_000,) and xa.dtype == torch.uint8 and ya == xa[0].item() - 1
    assert (xa[1:] == 0).all() and a.info == DatasetInfo("copy", 8, (9,), 100_000, False)
    ys = {a[i][1] for i in range(50)}
    assert ys <= set(range(8)) and len(ys) > 3
    noisy = load_dataset("copy", "train", length=1000, noise=0.5)
    x, y = noisy[0]
    assert x.max() <= 8 and 300 < int((x[1:] > 0).sum()) < 700 and y == x[0] - 1
    with pytest.raises(IndexError):
        a[50]


def test_adding_probe():
    ds = load_dataset("adding", "test", length=100_000, size=10**9, seed=0)
    assert len(ds) == 10**9  # generated on the fly: nothing stored per item
    assert ds.info == DatasetInfo("adding", 19, (10, 2), 100_000, False)
    for i in (0, 1, 999_999_999):
        x, y = ds[i]
        assert x.shape == (100_000, 2) and x.dtype == torch.uint8
        marks = torch.nonzero(x[:, 1]).flatten().tolist()
        assert len(marks) == 2 and marks[0] < 50_000 <= marks[1]
        assert y == int(x[marks[0], 0]) + int(x[marks[1], 0]) and x[:, 0].max() <= 9
        assert torch.equal(x, ds[i][0])
    train = load_dataset("adding", "train", length=100_000, size=10, seed=0)
    assert not torch.equal(train[0][0], ds[0][0])  # splits draw from different streams


# -------------------------------------------------------------------------------------- load_dataset
def test_load_dataset_validation(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"unknown dataset 'imagenet'; valid choices: mnist, pmnist"):
        load_dataset("imagenet", "train")
    with pytest.raises(ValueError, match=r"unknown split 'valid'; valid choices: train, test"):
        load_dataset("copy", "valid")
    with pytest.raises(ValueError, match=r"dataset 'copy' does not take option\(s\) side; valid options: length, size, seed, k, noise"):
        load_dataset("copy", "train", side=3)
    assert dataset_options("pmnist")[0] == "perm_seed" and "local_dir" in dataset_options("pmnist")
    monkeypatch.setenv("AUXRNN_DATA", str(tmp_path))
    assert data_root() == tmp_path and data_root("/x") == type(tmp_path)("/x")
    monkeypatch.delenv("AUXRNN_DATA")
    assert "auxrnn" in str(data_root())


def test_collate_rgb_and_errors():
    items = [(torch.ones(3, 3, dtype=torch.uint8), 1), (torch.full((5, 3), 255, dtype=torch.uint8), 2)]
    x, lengths, y = collate_sequences(items)
    assert x.shape == (2, 5, 3) and x.dtype == torch.int64 and x[1].max() == 255 and (x[0, 3:] == 0).all()
    with pytest.raises(ValueError, match="disagree on channels"):
        collate_sequences([(torch.ones(3, 3), 0), (torch.ones(3), 0)])
