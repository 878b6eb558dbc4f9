"""`auxrnn data {info,verify,fetch}` through `auxrnn.cli.main`."""
from __future__ import annotations

import pytest

from auxrnn.cli import main
from fixtures_formats import REAL_MNIST, have_real_mnist, write_class_csv

needs_mnist = pytest.mark.skipif(not have_real_mnist(), reason="set AUXRNN_MNIST_DIR to a folder with the real MNIST files")


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    for var in ("AUXRNN_MNIST_DIR", "AUXRNN_LOCAL_MNIST"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AUXRNN_DATA", str(tmp_path / "default_root"))
    monkeypatch.chdir(tmp_path)  # no ../shared next to the cwd
    return tmp_path


@pytest.mark.parametrize("command", ["info", "verify"])
@pytest.mark.parametrize("name", ["mnist", "pmnist", "cifar10", "stanforddogs", "dbpedia"])
def test_info_and_verify_never_download(isolated, capsys, monkeypatch, command, name):
    """Only `data fetch` (and training) fetch: with nothing cached, info and verify say how to fetch."""
    from auxrnn.data.datasets.base import _Fetched

    def no_fetch(self):
        raise AssertionError(f"`auxrnn data {command}` tried to fetch")

    monkeypatch.setattr(_Fetched, "download", no_fetch)
    monkeypatch.setenv("AUXRNN_MNIST_DIR", str(isolated / "a local copy it must not take either"))
    root = isolated / "root"
    assert main(["data", command, name, "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and f"Fetch it with `auxrnn data fetch {name}`" in err and "Traceback" not in err
    assert "Use download=True" not in err  # a Python argument is no advice on the command line
    assert [p for p in root.rglob("*") if p.is_file()] == [] if root.exists() else True


@needs_mnist
def test_cli_info_and_verify_mnist(isolated, capsys, monkeypatch):
    root = isolated / "root"
    monkeypatch.setenv("AUXRNN_MNIST_DIR", str(REAL_MNIST))
    assert main(["data", "info", "mnist", "--root", str(root)]) == 2  # nothing cached yet, nothing fetched
    err = capsys.readouterr().err
    assert "auxrnn data: error:" in err and "not found" in err and "auxrnn data fetch mnist" in err

    assert main(["data", "fetch", "mnist", "--root", str(root)]) == 0
    capsys.readouterr()
    assert main(["data", "info", "mnist", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "classes:   10" in out and "channels:  (256,)" in out and str(root / "MNIST" / "raw") in out
    assert "train:     60000 items, sequence length 784" in out and "test:      10000 items" in out

    monkeypatch.delenv("AUXRNN_MNIST_DIR")
    assert main(["data", "verify", "mnist", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "ok  " + str(root / "MNIST" / "raw" / "train-images-idx3-ubyte") in out
    assert "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db" in out
    assert "ok  mnist test: 10000 items" in out


@needs_mnist
def test_cli_fetch_mnist_local_dir(isolated, capsys):
    root = isolated / "r2"
    assert main(["data", "fetch", "mnist", "--root", str(root), "--local-dir", str(REAL_MNIST), "--split", "test"]) == 0
    assert f"mnist test: 10000 items at {root / 'MNIST' / 'raw'}" in capsys.readouterr().out


def test_cli_info_csv_and_probe(isolated, capsys):
    write_class_csv(isolated / "train.csv", [(1, "a", "bc"), (3, "d", "efgh")])
    write_class_csv(isolated / "test.csv", [(2, "x", "y")])
    assert main(["data", "info", "csv", "--folder", str(isolated), "--max-len", "4"]) == 0
    out = capsys.readouterr().out
    assert "classes:   3" in out and "train:     2 items, sequence length 4 (variable, longest)" in out
    assert main(["data", "info", "adding", "--length", "100000", "--size", "7"]) == 0
    out = capsys.readouterr().out
    assert "classes:   19" in out and "train:     7 items, sequence length 100000 (fixed)" in out


def test_cli_rejects_options_of_other_datasets(isolated, capsys):
    assert main(["data", "info", "copy", "--side", "40"]) == 2
    assert "dataset 'copy' does not take --side" in capsys.readouterr().err
    assert main(["data", "info", "nosuch"]) == 2
    assert "unknown dataset 'nosuch'" in capsys.readouterr().err
