"""Fetching into a data root is exclusive: two threads or two processes never write at once, and whoever
waited finds the files the first one fetched (decision D11)."""
from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from auxrnn.data import MNIST, load_dataset
from auxrnn.data.integrity import fetch_lock
from fixtures_formats import small_mnist, write_mnist_folder


def test_two_threads_loading_an_unfetched_dataset_fetch_it_once(monkeypatch, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    monkeypatch.setattr(MNIST, "resources", write_mnist_folder(src, small_mnist(), gz=True))
    inside, calls, most = [0], [0], [0]
    guard = threading.Lock()
    real = MNIST._fetch_from_folder

    def counted(self, folder):
        with guard:
            inside[0] += 1
            calls[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.3)  # a slow source: the other thread arrives meanwhile
        try:
            real(self, folder)
        finally:
            with guard:
                inside[0] -= 1

    monkeypatch.setattr(MNIST, "_fetch_from_folder", counted)
    root, got, errors = tmp_path / "root", [], []

    def load():
        try:
            got.append(len(load_dataset("mnist", "train", root=root, local_dir=src, search_local=False, mirrors=[],
                                        npm=False)))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=load) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and got == [len(small_mnist()["train-labels-idx1-ubyte"])] * 2
    assert (calls[0], most[0]) == (1, 1)  # fetched once; never two writers at once
    assert (root / ".MNIST.lock").is_file()


HOLD = """
import sys, time
from auxrnn.data.integrity import fetch_lock
with fetch_lock(sys.argv[1], "X"):
    with open(sys.argv[2], "a") as f:
        f.write(f"in {sys.argv[3]}\\n")
    time.sleep(0.5)
    with open(sys.argv[2], "a") as f:
        f.write(f"out {sys.argv[3]}\\n")
"""


@pytest.mark.slow
def test_two_processes_holding_the_fetch_lock_take_turns(tmp_path):
    trace = tmp_path / "trace.txt"
    procs = [subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "root"), str(trace), str(i)])
             for i in range(2)]
    for p in procs:
        assert p.wait(timeout=60) == 0
    lines = trace.read_text().split()
    pairs = [lines[i:i + 4] for i in range(0, len(lines), 4)]
    assert len(lines) == 8 and lines[0::4] == ["in", "in"] and lines[2::4] == ["out", "out"]
    assert all(p[1] == p[3] for p in pairs)  # each one's "in" is followed by its own "out": no interleaving


@pytest.mark.slow
def test_the_fetch_lock_is_released_when_its_holder_dies(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom auxrnn.data.integrity import fetch_lock\n"
                               "with fetch_lock(sys.argv[1], 'X'):\n    print('held', flush=True)\n    time.sleep(60)",
                               str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        holder.kill()
        holder.wait(timeout=30)
        with fetch_lock(tmp_path, "X") as path:  # would wait forever if a dead holder kept it
            assert path == tmp_path / ".X.lock"
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.stdout.close()
