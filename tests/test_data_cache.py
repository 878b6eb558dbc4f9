"""The MNIST cache (issue 30, section 4): a damaged file is named, a re-fetch is said in one line, and the
temporary files of a killed fetch are cleaned by the next fetch."""
from __future__ import annotations

import logging
import shutil

import pytest

from auxrnn.cli import main
from auxrnn.data import load_dataset
from auxrnn.data.integrity import remove_leftovers
from fixtures_formats import REAL_MNIST, have_real_mnist

needs_mnist = pytest.mark.skipif(not have_real_mnist(), reason="set AUXRNN_MNIST_DIR to a folder with the real MNIST files")
FROM_LOCAL = dict(local_dir=str(REAL_MNIST), search_local=False, mirrors=[], npm=False)
LABELS = "t10k-labels-idx1-ubyte"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A data root with MNIST fetched from the local copy (AUXRNN_MNIST_DIR)."""
    root = tmp_path_factory.mktemp("cache")
    load_dataset("mnist", "test", root=root, **FROM_LOCAL)
    return root, root / "MNIST" / "raw"


def _flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))


@needs_mnist
def test_verify_names_the_file_whose_checksum_does_not_match(cache, capsys):
    root, raw = cache
    _flip_a_byte(raw / LABELS)
    assert main(["data", "verify", "mnist", "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert f"{raw / LABELS}: sha256 mismatch (expected " in err and "Traceback" not in err
    assert "train-images-idx3-ubyte:" not in err  # only the damaged file is named
    load_dataset("mnist", "test", root=root, **FROM_LOCAL)  # fetched again for the next test


@needs_mnist
def test_a_damaged_cached_file_is_fetched_again_saying_so_in_one_line(cache, caplog):
    root, raw = cache
    _flip_a_byte(raw / LABELS)
    with caplog.at_level(logging.INFO, logger="auxrnn.data"):
        ds = load_dataset("mnist", "test", root=root, **FROM_LOCAL)
    assert len(ds) == 10000
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(said) == 1 and said[0].startswith(f"{raw / LABELS}: sha256 mismatch")
    assert "fetching it again" in said[0]
    assert main(["data", "verify", "mnist", "--root", str(root)]) == 0


@needs_mnist
def test_the_next_fetch_removes_what_a_killed_fetch_left(cache):
    root, raw = cache
    left = [raw / ".train-images-idx3-ubyte.k1ll3d.tmp", raw / f".{LABELS}.x9.tmp"]
    for p in left:
        p.write_bytes(b"\0" * 1000)  # a temporary file whose writer was killed
    other = raw / ".someone-else.tmp"
    other.write_bytes(b"kept")
    (raw / LABELS).unlink()  # something to fetch
    load_dataset("mnist", "test", root=root, **FROM_LOCAL)
    assert not any(p.exists() for p in left) and other.exists() and (raw / LABELS).is_file()


def test_remove_leftovers_takes_only_the_temporary_files_of_the_names_given(tmp_path):
    mine = [tmp_path / ".a.bin.123.tmp", tmp_path / ".b.bin.x.tmp"]
    keep = [tmp_path / "a.bin", tmp_path / ".c.bin.1.tmp", tmp_path / ".a.bin.part", tmp_path / "a.bin.gz"]
    for p in mine + keep:
        p.write_bytes(b"x")
    assert sorted(remove_leftovers(tmp_path, ["a.bin", "b.bin"])) == sorted(mine)
    assert all(p.exists() for p in keep) and not any(p.exists() for p in mine)
