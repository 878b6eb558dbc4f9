"""Strict format readers on fixtures written in the published formats, and every bad input."""
from __future__ import annotations

import gzip
import os
import pickle
import struct

import numpy as np
import pytest

from auxrnn.data import formats
from auxrnn.data.integrity import extract_verified
from fixtures_formats import (
    CSV_ROWS,
    cifar_batch,
    idx_bytes,
    write_class_csv,
    write_dogs_list,
    write_idx,
)


def _listing(folder):
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


# -------------------------------------------------------------------------------------------- IDX
@pytest.mark.parametrize("gz", [False, True])
def test_idx_roundtrip_raw_and_gzip(tmp_path, gz):
    imgs = np.random.default_rng(0).integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    labels = np.array([5, 0, 4, 1, 9, 2, 1], dtype=np.uint8)
    pi = write_idx(tmp_path / "train-images-idx3-ubyte", imgs, gz=gz)
    pl = write_idx(tmp_path / "train-labels-idx1-ubyte", labels, gz=gz)
    x, y = formats.read_idx_pair(pi, pl)
    assert x.dtype == np.uint8 and x.shape == (7, 28, 28) and x.flags.writeable
    np.testing.assert_array_equal(x, imgs)
    assert y.dtype == np.int64 and y.tolist() == labels.tolist()


def test_idx_real_magic_numbers(tmp_path):
    data = idx_bytes(np.zeros((2, 28, 28), np.uint8))
    assert data[:4] == b"\x00\x00\x08\x03" and struct.unpack(">3I", data[4:16]) == (2, 28, 28)
    assert idx_bytes(np.zeros(2, np.uint8))[:4] == b"\x00\x00\x08\x01"


def test_idx_wrong_magic(tmp_path):
    p = tmp_path / "train-images-idx3-ubyte"
    p.write_bytes(b"\x12\x34\x08\x03" + struct.pack(">3I", 1, 2, 2) + bytes(4))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte: bad IDX magic number 0x12340803"):
        formats.read_idx(p)
    # labels file where images are expected
    q = write_idx(tmp_path / "labels", np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match=r"labels: IDX magic number 0x00000801, expected 0x00000803"):
        formats.read_idx_images(q)


def test_idx_size_disagrees_with_header(tmp_path):
    p = tmp_path / "imgs"
    p.write_bytes(idx_bytes(np.zeros((3, 4, 4), np.uint8))[:-5])
    with pytest.raises(ValueError, match=r"imgs: IDX header declares shape \(3, 4, 4\) \(48 bytes of data\) but the file holds 43"):
        formats.read_idx(p)


def test_idx_image_label_counts_differ(tmp_path):
    pi = write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((4, 28, 28), np.uint8))
    pl = write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match=r"holds 4 images but .*train-labels-idx1-ubyte holds 3 labels"):
        formats.read_idx_pair(pi, pl)


def test_idx_truncated_gzip(tmp_path):
    p = write_idx(tmp_path / "train-images-idx3-ubyte", np.ones((50, 28, 28), np.uint8), gz=True)
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz: corrupt or truncated gzip"):
        formats.read_idx(p)


def test_extract_verified_rejects_bad_gzip_and_bad_sum_leaving_nothing(tmp_path):
    raw = idx_bytes(np.arange(256, dtype=np.uint8).reshape(16, 16)[None])
    src = tmp_path / "src" / "f.gz"
    src.parent.mkdir()
    good = gzip.compress(raw)
    import hashlib

    sha = hashlib.sha256(raw).hexdigest()
    cache = tmp_path / "cache"
    src.write_bytes(good[:-12])  # truncated: CRC and size trailer missing
    with pytest.raises(ValueError, match=r"f.gz: corrupt or truncated gzip"):
        extract_verified(src, cache / "f", sha)
    assert _listing(cache) == []
    src.write_bytes(good)
    with pytest.raises(ValueError, match=r"f.gz: decompressed content fails its sha256 check"):
        extract_verified(src, cache / "f", "0" * 64)
    assert _listing(cache) == []
    extract_verified(src, cache / "f", sha)
    assert _listing(cache) == ["f"] and (cache / "f").read_bytes() == raw


# -------------------------------------------------------------------------------------- CIFAR-10
@pytest.mark.parametrize("protocol", [2, pickle.DEFAULT_PROTOCOL, 5])
def test_cifar_batch_reads_real_layout(tmp_path, protocol):
    batch = cifar_batch(6, seed=1)
    p = tmp_path / "data_batch_1"
    with open(p, "wb") as f:
        pickle.dump(batch, f, protocol=protocol)
    data, labels = formats.read_cifar_batch(p)
    np.testing.assert_array_equal(data, batch[b"data"])
    assert labels.dtype == np.int64 and labels.tolist() == batch[b"labels"]


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_cifar_forbidden_global(tmp_path):
    p = tmp_path / "data_batch_1"
    batch = cifar_batch(2, 0)
    batch[b"labels"] = _Evil()
    p.write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(ValueError, match=r"data_batch_1: not a valid CIFAR-10 python batch .*forbidden global (posix|os|nt)\.system"):
        formats.read_cifar_batch(p)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda b: b.pop(b"labels"), r"lacks key\(s\) \['labels'\]"),
        (lambda b: b.__setitem__(b"data", b[b"data"].astype(np.float32)), r"'data' must be a uint8 array of shape \(N, 3072\), got float32"),
        (lambda b: b.__setitem__(b"data", b[b"data"][:, :100]), r"got uint8 \(3, 100\)"),
        (lambda b: b.__setitem__(b"labels", [0, 1, 10]), r"labels outside 0..9"),
        (lambda b: b.__setitem__(b"labels", [0, 1]), r"3 images but 2 labels"),
        (lambda b: b.__setitem__(b"labels", ["a", "b", "c"]), r"'labels' must be a list of ints"),
    ],
)
def test_cifar_unexpected_contents(tmp_path, mutate, message):
    batch = cifar_batch(3, 0)
    mutate(batch)
    p = tmp_path / "test_batch"
    p.write_bytes(pickle.dumps(batch))
    with pytest.raises(ValueError, match=r"test_batch: .*" + message):
        formats.read_cifar_batch(p)


def test_cifar_not_a_dict_and_truncated(tmp_path):
    p = tmp_path / "data_batch_2"
    p.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(ValueError, match=r"data_batch_2: expected a dict, the pickle holds a list"):
        formats.read_cifar_batch(p)
    p.write_bytes(pickle.dumps(cifar_batch(3, 0))[:200])
    with pytest.raises(ValueError, match=r"data_batch_2: not a valid CIFAR-10 python batch"):
        formats.read_cifar_batch(p)


# ------------------------------------------------------------------------------------------- CSV
def test_csv_quoting_commas_quotes_newlines_utf8(tmp_path):
    p = write_class_csv(tmp_path / "train.csv", CSV_ROWS)
    buf, off, labels = formats.read_class_csv(p)
    assert labels.tolist() == [c - 1 for c, _, _ in CSV_ROWS]
    for i, (_, title, content) in enumerate(CSV_ROWS):
        assert bytes(buf[off[i]:off[i + 1]]) == f"{title} {content}".encode("utf-8")
    # truncation counts bytes
    buf, off, _ = formats.read_class_csv(p, max_len=10)
    assert np.diff(off).max() == 10


def test_csv_undecodable_text(tmp_path):
    p = tmp_path / "train.csv"
    p.write_bytes(b'1,"ok","fine"\n2,"bad \xff\xfe bytes","x"\n')
    with pytest.raises(ValueError, match=r"train.csv, line 2: text is not valid UTF-8"):
        formats.read_class_csv(p)


def test_csv_empty_document_and_bad_rows(tmp_path):
    p = tmp_path / "test.csv"
    p.write_bytes(b'1,"a","b"\n2,"multi\nline","c"\n3,"","  "\n')
    with pytest.raises(ValueError, match=r"test.csv, line 4: empty document"):
        formats.read_class_csv(p)
    p.write_bytes(b'1,"a","b","extra"\n')
    with pytest.raises(ValueError, match=r"test.csv, line 1: expected 3 fields"):
        formats.read_class_csv(p)
    p.write_bytes(b'one,"a","b"\n')
    with pytest.raises(ValueError, match=r"test.csv, line 1: class 'one' is not an integer"):
        formats.read_class_csv(p)
    p.write_bytes(b'15,"a","b"\n')
    with pytest.raises(ValueError, match=r"test.csv, line 1: class 15 outside 1..14"):
        formats.read_class_csv(p, n_classes=14)
    p.write_bytes(b"")
    with pytest.raises(ValueError, match=r"test.csv: no rows"):
        formats.read_class_csv(p)


# ------------------------------------------------------------------------------------ StanfordDogs
def test_dogs_list_roundtrip(tmp_path):
    files = ["n02085620-Chihuahua/n02085620_5927.jpg", "n02085782-Japanese_spaniel/n02085782_17.jpg"]
    write_dogs_list(tmp_path / "train_list.mat", files, [1, 2])
    got, labels = formats.read_dogs_list(tmp_path / "train_list.mat")
    assert got == files and labels.tolist() == [0, 1]


def test_dogs_list_missing_variable(tmp_path):
    import scipy.io

    scipy.io.savemat(str(tmp_path / "test_list.mat"), {"labels": np.ones((2, 1))})
    with pytest.raises(ValueError, match=r"test_list.mat: missing variable 'file_list'"):
        formats.read_dogs_list(tmp_path / "test_list.mat")
    (tmp_path / "bad.mat").write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(ValueError, match=r"bad.mat: not a readable MATLAB .mat list"):
        formats.read_dogs_list(tmp_path / "bad.mat")


# ------------------------------------------------------------------------------- sloppy CSV inputs
BOM = b"\xef\xbb\xbf"


@pytest.mark.parametrize("first", [b'1,"a","b"\n', b'"1","a","b"\n'])
def test_csv_byte_order_mark_is_dropped(tmp_path, first):
    p = tmp_path / "train.csv"
    p.write_bytes(BOM + first + b'2,"c","d"\n')
    buf, off, labels = formats.read_class_csv(p)
    assert labels.tolist() == [0, 1] and bytes(buf[off[0]:off[1]]) == b"a b"
    assert formats.max_class_csv(p) == 2


@pytest.mark.parametrize("header", [b"class,title,content", b" Class , TITLE,Content ", b'"class","title","content"'])
def test_csv_header_row_is_skipped(tmp_path, header):
    p = tmp_path / "train.csv"
    p.write_bytes(BOM + header + b'\n1,"a","b"\n3,"","  "\n')
    with pytest.raises(ValueError, match=r"train.csv, line 3: empty document"):  # lines still counted from the top
        formats.read_class_csv(p)
    p.write_bytes(header + b'\r\n1,"a","b"\r\n')
    buf, off, labels = formats.read_class_csv(p)
    assert labels.tolist() == [0] and bytes(buf) == b"a b" and formats.max_class_csv(p) == 1


@pytest.mark.parametrize("header", [b"label,title,content", b"class,text", b"class,title,body", b"Class Index,Title,Description"])
def test_csv_other_header_row_explains_the_fix(tmp_path, header):
    p = tmp_path / "test.csv"
    p.write_bytes(BOM + header + b'\n1,"a","b"\n')
    first = header.split(b",")[0].decode()
    msg = rf"test.csv, line 1: class '{first}' is not an integer; this first row looks like a header row.*delete this row"
    with pytest.raises(ValueError, match=msg):
        formats.read_class_csv(p)
    with pytest.raises(ValueError, match=msg):
        formats.max_class_csv(p)


def test_csv_non_integer_class_after_the_first_row_is_no_header(tmp_path):
    p = tmp_path / "train.csv"
    p.write_bytes(b'1,"a","b"\nclass,title,content\n')
    with pytest.raises(ValueError, match=r"train.csv, line 2: class 'class' is not an integer$"):
        formats.read_class_csv(p)


def test_csv_class_out_of_range_names_the_actual_top(tmp_path):
    p = tmp_path / "train.csv"
    p.write_bytes(b'1,"a","b"\n0,"c","d"\n3,"e","f"\n')
    with pytest.raises(ValueError, match=r"train.csv, line 2: class 0 outside 1\.\.3 \(classes are 1-based; 3 is the largest"):
        formats.read_class_csv(p)
    with pytest.raises(ValueError, match=r"train.csv, line 2: class 0 outside 1\.\.14$"):
        formats.read_class_csv(p, n_classes=14)
    p.write_bytes(b'-2,"c","d"\n')
    with pytest.raises(ValueError, match=r"line 1: class -2 is below 1 \(classes are 1-based; the file holds no class >= 1\)"):
        formats.read_class_csv(p)
