"""Two CPU processes with gloo (torchrun): both ranks end with identical parameters."""
from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
from conftest import TINY_MODEL, same_threads_env, tiny_args
from fixtures_formats import gz_mnist_folder, have_real_mnist

TINY = tiny_args(35, 4)
# Anchors are deterministic here (subseq_len = T puts the only valid anchor at T), so the ranks' per-rank
# anchor seeds cannot make a 2-rank run differ from one process on the same global batch.
SAME_BATCH = [*TINY, "model.subseq_len=30", "model.aux_truncate=30", "train.pretrain_steps=2", "train.steps=3",
              "train.checkpoint_every=0", "train.device=cpu", "--no-progress"]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> dict:
    """The last checkpoint of SAME_BATCH trained by one process: the run both multi-process tests match."""
    run = tmp_path_factory.mktemp("ddp") / "one"
    res = subprocess.run([sys.executable, "-m", "auxrnn", "train", *SAME_BATCH, f"train.out={run}"],
                         capture_output=True, text=True, timeout=120, env=same_threads_env())
    assert res.returncode == 0, res.stderr[-3000:]
    return torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)


@pytest.mark.slow
def test_two_gloo_ranks_train_to_identical_parameters(tmp_path):
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "auxrnn", "train", *TINY, "train.pretrain_steps=2", "train.steps=3", "train.checkpoint_every=2",
           "train.device=cpu", f"train.out={run}", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["world_size"] == 2
    assert (summary["threads"], summary["threads_from"]) == (1, "OMP_NUM_THREADS")  # the user's, kept
    hashes = summary["param_sha256"]
    assert len(hashes) == 2 and hashes[0] == hashes[1]
    assert summary["test_count"] == 35  # gathered across ranks: every example once, none dropped
    ck = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert ck["step"] == 5 and len(ck["rng"]) == 2  # one RNG record per rank
    assert not torch.equal(ck["rng"][0]["anchor"], ck["rng"][1]["anchor"])  # anchors seeded with seed + rank


@pytest.mark.determinism
@pytest.mark.slow
def test_two_gloo_ranks_train_like_one_process_on_the_same_global_batch(tmp_path, one_process):
    """DDP averages the two half-batch gradients into the global batch's, across the pretraining -> training
    boundary (where the wrapper changes: DDP searches for unused parameters only while pretraining leaves
    the classifier out)."""
    two = tmp_path / "two"
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "auxrnn", "train", *SAME_BATCH, f"train.out={two}"], capture_output=True, text=True,
                         timeout=120, env=same_threads_env())
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    a = one_process
    b = torch.load(two / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert a["step"] == b["step"] == 5
    for name, p in a["model"].items():
        torch.testing.assert_close(b["model"][name], p, rtol=1e-5, atol=1e-6, msg=lambda m: f"{name}: {m}")
    n_params = len(a["optimizer"]["param_groups"][0]["params"])
    assert len(a["optimizer"]["state"]) == len(b["optimizer"]["state"]) == n_params  # every parameter trained


class _CountingFiles(SimpleHTTPRequestHandler):
    """Serves a folder and records every path asked for (the count of fetches)."""

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802
        self.server.requests.append(self.path)
        super().do_GET()


@pytest.mark.slow
@pytest.mark.skipif(not have_real_mnist(), reason="set AUXRNN_MNIST_DIR to a folder with the real MNIST files")
def test_two_gloo_ranks_fetch_the_data_once_then_both_train(tmp_path):
    """An empty data root and MNIST served from a local folder as an HTTP mirror: local rank 0 fetches
    (4 files, each asked for once) while rank 1 waits at the barrier, then both read it and train. No
    OMP_NUM_THREADS: torchrun's own 1 is replaced by each rank's share of the cores."""
    served = gz_mnist_folder(tmp_path / "mirror")  # a mirror serves .gz, whichever form AUXRNN_MNIST_DIR holds
    srv = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_CountingFiles, directory=str(served)))
    srv.requests = []
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        mirror = f"http://127.0.0.1:{srv.server_address[1]}/"
        run, root = tmp_path / "run", tmp_path / "data"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "auxrnn", "train", "--preset", "none", "data.name=mnist", f"data.root={root}",
               f"data.options={{search_local: false, npm: false, mirrors: ['{mirror}']}}", "data.batch_size=8",
               "data.eval_batch_size=1000", *TINY_MODEL, "train.tensorboard=false", "train.steps=2",
               "train.device=cpu", f"train.out={run}", "--no-progress"]
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "AUXRNN_DATA")}
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    finally:
        srv.shutdown()
        srv.server_close()
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    assert sorted(srv.requests) == sorted(f"/{n}.gz" for n in names)  # one fetch, by one rank
    assert sorted(p.name for p in (root / "MNIST" / "raw").iterdir()) == sorted(names)  # no .part, no temp file
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["world_size"] == 2 and summary["test_count"] == 10000
    assert len(set(summary["param_sha256"])) == 1 and len(summary["param_sha256"]) == 2
    assert "torchrun's default OMP_NUM_THREADS=1 replaced" in summary["threads_from"]
    assert "/ 2 ranks on this host" in summary["threads_from"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.determinism
@pytest.mark.slow
def test_two_torchrun_agents_as_two_nodes_train_like_one_process(tmp_path, one_process):
    """The multi-node command of docs/distributed.md on one machine: two agents (--nnodes 2, one rank
    each) meet at a c10d rendezvous on 127.0.0.1 and train like one process on the same global batch."""
    two = tmp_path / "nodes"
    node = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
            "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{_free_port()}", "--rdzv-id", "auxrnn-test",
            "-m", "auxrnn", "train", *SAME_BATCH, f"train.out={two}"]
    agents = [subprocess.Popen(node, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=same_threads_env())
              for _ in range(2)]
    try:
        outs = [a.communicate(timeout=180)[0] for a in agents]
    finally:
        for a in agents:
            if a.poll() is None:
                a.kill()
    assert [a.returncode for a in agents] == [0, 0], "\n".join(o[-3000:] for o in outs)
    summary = json.loads((two / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["status"] == "finished"
    a = one_process
    b = torch.load(two / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert a["step"] == b["step"] == 5
    for name, p in a["model"].items():
        torch.testing.assert_close(b["model"][name], p, rtol=1e-5, atol=1e-6, msg=lambda m: f"{name}: {m}")
