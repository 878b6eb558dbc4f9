"""DBpedia and StanfordDogs fetched from archives served by a 127.0.0.1 HTTP server the tests start."""
from __future__ import annotations

import hashlib
import io
import logging
import tarfile

import numpy as np
import pytest
import torch

from auxrnn.cli import main
from auxrnn.data import DBpedia, DownloadError, RemoteFile, StanfordDogs, load_dataset
from auxrnn.data import integrity as _integrity
from fixtures_formats import CSV_ROWS, dbpedia_archive, dogs_archives, sha256_hex
from test_data_download import _no_partials, server  # noqa: F401 - the HTTP server fixture

TEST_ROWS = CSV_ROWS[:2] + [(14, "Last", "class fourteen")]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    monkeypatch.setattr(_integrity, "RETRY_BACKOFF", 0.0)
    for var in ("AUXRNN_DBPEDIA_DIR", "AUXRNN_STANFORDDOGS_DIR", "AUXRNN_DATA"):
        monkeypatch.delenv(var, raising=False)


def _flip(data: bytes) -> bytes:
    i = len(data) // 2
    return data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]


def _requests(server):
    return [p for p, _ in server.requests]


# ------------------------------------------------------------------------------------------ DBpedia
def test_dbpedia_defaults_have_published_checksums():
    assert DBpedia.mirrors[0].url == "https://s3.amazonaws.com/fast-ai-nlp/dbpedia_csv.tgz"
    assert all(m.verified and m.origin for m in DBpedia.mirrors)
    assert all(len(sha) == 64 for _, sha, _ in StanfordDogs.archives)


@pytest.fixture
def dbpedia_tgz():
    return dbpedia_archive(CSV_ROWS, TEST_ROWS)


def test_dbpedia_corrupt_mirror_rejected_next_used(server, dbpedia_tgz, tmp_path, caplog):
    sha = sha256_hex(dbpedia_tgz)
    server.files["/bad/dbpedia_csv.tgz"] = _flip(dbpedia_tgz)
    server.files["/good/dbpedia_csv.tgz"] = dbpedia_tgz
    mirrors = [RemoteFile(server.url + "/bad/dbpedia_csv.tgz", sha256=sha),
               RemoteFile(server.url + "/good/dbpedia_csv.tgz", sha256=sha)]
    root = tmp_path / "root"
    with caplog.at_level(logging.WARNING, logger="auxrnn.data"):
        tr = load_dataset("dbpedia", "train", root=root, mirrors=mirrors)
    assert any("/bad/" in r.message and "sha256 mismatch" in r.message for r in caplog.records)
    assert len(tr) == 5 and tr.info.n_classes == 14
    text = f"{CSV_ROWS[3][1]} {CSV_ROWS[3][2]}".encode("utf-8")
    assert tr[3][0].tolist() == [b + 1 for b in text] and tr[3][1] == 0
    raw = root / "DBpedia" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == ["dbpedia_csv"]
    assert sorted(p.name for p in (raw / "dbpedia_csv").iterdir()) == ["test.csv", "train.csv"]
    assert _no_partials(root) == []
    n = len(server.requests)
    te = load_dataset("dbpedia", "test", root=root, mirrors=mirrors)  # cached: asks no source again
    assert len(server.requests) == n and len(te) == 3 and te[2][1] == 13


def test_dbpedia_md5_mirror_and_extracted_checksums(server, dbpedia_tgz, tmp_path, monkeypatch):
    server.files["/a/dbpedia_csv.tar.gz"] = dbpedia_tgz
    url = server.url + "/a/dbpedia_csv.tar.gz"
    md5 = hashlib.md5(dbpedia_tgz).hexdigest()
    # the archive passes but its extracted train.csv does not: rejected, nothing installed
    monkeypatch.setattr(DBpedia, "extracted_checksums", {"train.csv": ("md5", "0" * 32)})
    root = tmp_path / "root"
    with pytest.raises(DownloadError, match=r"train.csv fails its md5 check"):
        load_dataset("dbpedia", "train", root=root, mirrors=[RemoteFile(url, md5=md5)])
    assert not (root / "DBpedia" / "raw" / "dbpedia_csv").exists() and _no_partials(root) == []
    # with the right extracted checksums even a mirror without an archive checksum is verified
    with tarfile.open(fileobj=io.BytesIO(dbpedia_tgz)) as tf:
        digests = {n: hashlib.md5(tf.extractfile(f"dbpedia_csv/{n}").read()).hexdigest() for n in ("train.csv", "test.csv")}
    monkeypatch.setattr(DBpedia, "extracted_checksums", {n: ("md5", d) for n, d in digests.items()})
    assert len(load_dataset("dbpedia", "test", root=root, mirrors=[url])) == 3


def test_dbpedia_archive_missing_a_file_installs_nothing(server, tmp_path):
    body = dbpedia_archive(CSV_ROWS, TEST_ROWS, drop=("test.csv",))
    server.files["/x/dbpedia_csv.tgz"] = body
    root = tmp_path / "root"
    with pytest.raises(DownloadError, match=r"no test.csv there"):
        load_dataset("dbpedia", "train", root=root, mirrors=[RemoteFile(server.url + "/x/dbpedia_csv.tgz", sha256=sha256_hex(body))])
    assert not (root / "DBpedia" / "raw" / "dbpedia_csv").exists() and _no_partials(root) == []


def test_dbpedia_all_sources_fail(server, dbpedia_tgz, tmp_path):
    sha = sha256_hex(dbpedia_tgz)
    server.files["/bad/dbpedia_csv.tgz"] = dbpedia_tgz[: len(dbpedia_tgz) // 2]
    empty = tmp_path / "empty"
    empty.mkdir()
    root = tmp_path / "root"
    with pytest.raises(DownloadError) as ei:
        load_dataset("dbpedia", "train", root=root, local_dir=empty, mirrors=[
            RemoteFile(server.url + "/nothing/dbpedia_csv.tgz", sha256=sha),
            RemoteFile(server.url + "/bad/dbpedia_csv.tgz", sha256=sha),
            server.url + "/unverified/dbpedia_csv.tgz",
        ])
    msg = str(ei.value)
    assert f"local folder {empty}" in msg and "neither train.csv and test.csv nor" in msg
    assert f"mirror {server.url}/nothing/dbpedia_csv.tgz" in msg and "HTTP 404" in msg
    assert f"mirror {server.url}/bad/dbpedia_csv.tgz" in msg and "sha256 mismatch" in msg
    assert f"mirror {server.url}/unverified/dbpedia_csv.tgz" in msg and "refusing unverified data" in msg
    assert "/unverified/" not in "".join(_requests(server))  # never downloaded
    assert "place the files by hand" in msg and "Zhang et al. 2015" in msg and "AUXRNN_DBPEDIA_DIR" in msg
    assert _no_partials(root) == [] and not (root / "DBpedia" / "raw" / "dbpedia_csv").exists()


def test_dbpedia_local_folder_archive_and_csvs(dbpedia_tgz, tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    (src / "dbpedia_csv.tar.gz").write_bytes(dbpedia_tgz)
    mirrors = [RemoteFile("http://127.0.0.1:9/never", sha256=sha256_hex(dbpedia_tgz))]
    monkeypatch.setenv("AUXRNN_DBPEDIA_DIR", str(src))
    ds = load_dataset("dbpedia", "train", root=tmp_path / "r1", mirrors=mirrors)
    assert len(ds) == 5 and (src / "dbpedia_csv.tar.gz").is_file()  # the user's archive is kept
    # an archive matching no published checksum is refused
    (src / "dbpedia_csv.tar.gz").write_bytes(_flip(dbpedia_tgz))
    with pytest.raises(DownloadError, match=r"matches none of the published archive checksums"):
        load_dataset("dbpedia", "train", root=tmp_path / "r2", mirrors=mirrors)
    # a folder of extracted CSVs, named with local_dir=
    csvs = tmp_path / "r1" / "DBpedia" / "raw" / "dbpedia_csv"
    ds = load_dataset("dbpedia", "test", root=tmp_path / "r3", local_dir=csvs, mirrors=[])
    assert len(ds) == 3 and (tmp_path / "r3" / "DBpedia" / "raw" / "dbpedia_csv" / "train.csv").is_file()


def test_dbpedia_download_false_and_cli(server, dbpedia_tgz, tmp_path, monkeypatch, capsys):
    with pytest.raises(RuntimeError, match=r"DBpedia not found.*auxrnn data fetch dbpedia.*by hand"):
        load_dataset("dbpedia", "train", root=tmp_path, download=False)
    server.files["/c/dbpedia_csv.tgz"] = dbpedia_tgz
    monkeypatch.setattr(DBpedia, "mirrors", [RemoteFile(server.url + "/c/dbpedia_csv.tgz", sha256=sha256_hex(dbpedia_tgz))])
    assert main(["data", "fetch", "dbpedia", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "dbpedia train: 5 items" in out and "dbpedia test: 3 items" in out
    assert main(["data", "verify", "dbpedia", "--root", str(tmp_path)]) == 0


# ------------------------------------------------------------------------------------- StanfordDogs
@pytest.fixture
def dogs(tmp_path, monkeypatch):
    tars, info = dogs_archives(tmp_path / "fixture")
    monkeypatch.setattr(StanfordDogs, "archives", [
        ("lists.tar", sha256_hex(tars["lists.tar"]), len(tars["lists.tar"])),
        ("images.tar", sha256_hex(tars["images.tar"]), None),
    ])
    return tars, info


def test_stanforddogs_corrupt_mirror_rejected_next_used(server, dogs, tmp_path, caplog):
    tars, info = dogs
    server.files["/bad/lists.tar"] = tars["lists.tar"]
    server.files["/bad/images.tar"] = _flip(tars["images.tar"])
    for name, body in tars.items():
        server.files[f"/good/{name}"] = body
    root = tmp_path / "root"
    with caplog.at_level(logging.WARNING, logger="auxrnn.data"):
        ds = load_dataset("stanforddogs", "train", root=root, side=48,
                          mirrors=[server.url + "/bad/", server.url + "/good/"])
    assert any("/bad/" in r.message and "sha256 mismatch" in r.message for r in caplog.records)
    # lists.tar from the first mirror was verified and kept; the second mirror was asked only for images.tar
    assert sorted(_requests(server)) == ["/bad/images.tar", "/bad/lists.tar", "/good/images.tar"]
    raw = root / "StanfordDogs" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == ["Images", "file_list.mat", "test_list.mat", "train_list.mat"]
    assert _no_partials(root) == []
    files, labels = info["lists"]["train"]
    assert len(ds) == len(files) and ds.info.n_classes == 3
    x, y = ds[1]
    assert x.dtype == torch.uint8 and x.shape == (48 * 48, 3) and y == labels[1] - 1
    assert np.abs(x.numpy().astype(int) - np.array(info["colours"][files[1]])).max() <= 3
    n = len(server.requests)
    load_dataset("stanforddogs", "test", root=root, mirrors=[server.url + "/good/"])
    assert len(server.requests) == n


def test_stanforddogs_all_sources_fail(server, dogs, tmp_path):
    tars, _ = dogs
    server.files["/bad/lists.tar"] = _flip(tars["lists.tar"])
    root = tmp_path / "root"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DownloadError) as ei:
        load_dataset("stanforddogs", "train", root=root, local_dir=empty,
                     mirrors=[server.url + "/nothing/", server.url + "/bad/"])
    msg = str(ei.value)
    assert f"local folder {empty}" in msg and "no lists.tar there" in msg
    assert f"mirror {server.url}/nothing/" in msg and "HTTP 404" in msg
    assert f"mirror {server.url}/bad/" in msg and "sha256 mismatch" in msg
    assert "StanfordDogs not found" in msg and "images.tar" in msg and "lists.tar" in msg and "by hand" in msg
    assert _no_partials(root) == [] and not (root / "StanfordDogs" / "raw" / "Images").exists()


def test_stanforddogs_local_folder_of_archives(dogs, tmp_path):
    tars, info = dogs
    src = tmp_path / "src"
    src.mkdir()
    for name, body in tars.items():
        (src / name).write_bytes(body)
    ds = load_dataset("stanforddogs", "test", root=tmp_path / "root", local_dir=src, mirrors=[])
    assert len(ds) == len(info["lists"]["test"][0])
    assert sorted(p.name for p in src.iterdir()) == ["images.tar", "lists.tar"]  # the user's files are kept


def test_stanforddogs_download_false(tmp_path):
    with pytest.raises(RuntimeError, match=r"StanfordDogs not found .*images.tar.*lists.tar"):
        load_dataset("stanforddogs", "train", root=tmp_path, download=False)
