"""Load, predict, keep the best: `auxrnn.load`, `auxrnn predict`, best.pt and `auxrnn eval --checkpoint`, end to end.

Tiny runs (a second each): real-valued arrays quantised into tokens, and IDX images read in a permuted order,
so that the input preparation rebuilt from a checkpoint alone is checked against the dataset's own items.
"""
from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import auxrnn
from auxrnn.cli import main
from auxrnn.data import formats
from conftest import SAME_THREADS, TINY_MODEL, write_mnist_idx
from fixtures_formats import CSV_ROWS, REAL_MNIST, have_real_mnist, write_class_csv

needs_mnist = pytest.mark.skipif(not have_real_mnist(),
                                 reason="set AUXRNN_MNIST_DIR to a folder with the real MNIST files")


def _arrays(folder, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 32), ("test", 12)):
        y = rng.integers(0, 3, n)
        x = rng.normal(size=(n, 40, 2)).astype(np.float32) + y[:, None, None]  # the class shifts the signal
        np.save(folder / f"x_{split}.npy", x)
        np.save(folder / f"y_{split}.npy", y)


def _train(run, *extra):
    args = ["train", "--preset", "none", "data.batch_size=8", *TINY_MODEL, "model.aux=reconstruct",
            "train.pretrain_steps=2", "train.steps=8", "train.tensorboard=false", f"train.out={run}",
            "--no-progress", SAME_THREADS, *extra]
    assert main(args) == 0
    return json.loads((run / "summary.json").read_text())


@pytest.fixture(scope="module")
def arrays_run(tmp_path_factory):
    """A finished r-LSTM on real-valued arrays with a validation split and best.pt kept."""
    root = tmp_path_factory.mktemp("arrays_run")
    data, run = root / "data", root / "run"
    _arrays(data)
    summary = _train(run, "data.name=arrays", f"data.options.path={data}", "data.options.bins=16",
                     "data.val_size=8", "train.eval_every=2", "train.keep_best=true", "train.seed=3")
    return data, run, summary


def test_best_checkpoint_is_chosen_on_validation_and_named_in_the_summary(arrays_run, capsys):
    data, run, summary = arrays_run
    assert summary["checkpoint"] == "checkpoints/last.pt" and summary["best_checkpoint"] == "checkpoints/best.pt"
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in evals if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [2, 4, 6, 8, 10]
    top = max(r["val_acc"] for r in evals)
    first = next(r for r in evals if r["val_acc"] == top)  # the earliest of equal validation scores
    assert (summary["best_step"], summary["best_val_accuracy"]) == (first["step"], top)
    assert main(["eval", str(run), "--checkpoint", "best", "--out", str(run / "best.json")]) == 0
    best = json.loads((run / "best.json").read_text())
    assert best["step"] == first["step"] and best["accuracy"] == first["test_acc"]
    assert main(["eval", str(run), "--checkpoint", "last", "--out", str(run / "last.json")]) == 0
    assert json.loads((run / "last.json").read_text())["accuracy"] == summary["test_accuracy"]


def test_predict_writes_probabilities_and_labels_that_agree_with_eval(arrays_run, tmp_path, capsys):
    data, run, summary = arrays_run
    y = np.load(data / "y_test.npy")
    assert main(["predict", str(run), "--data", str(data / "x_test.npy"), "--out", str(tmp_path / "p.csv")]) == 0
    assert "predicted 12 items" in capsys.readouterr().out
    rows = list(csv.reader((tmp_path / "p.csv").open()))
    assert rows[0] == ["label", "p0", "p1", "p2"] and len(rows) == 13
    labels = np.array([int(r[0]) for r in rows[1:]])
    probs = np.array([[float(v) for v in r[1:]] for r in rows[1:]])
    assert np.allclose(probs.sum(1), 1, atol=1e-5) and np.array_equal(labels, probs.argmax(1))
    assert int((labels == y).sum()) == summary["test_correct"]  # the same model, the same inputs as eval

    np.savez(tmp_path / "x.npz", x=np.load(data / "x_test.npy"))
    assert main(["predict", str(run), "--data", str(tmp_path / "x.npz"), "--out", str(tmp_path / "p.npy")]) == 0
    rec = np.load(tmp_path / "p.npy", allow_pickle=False)
    assert rec.dtype.names == ("label", "probs") and rec["probs"].shape == (12, 3)
    assert np.array_equal(rec["label"], labels) and np.allclose(rec["probs"], probs, atol=1e-5)


def test_load_predicts_on_raw_values_without_a_dataset(arrays_run):
    data, run, summary = arrays_run
    model = auxrnn.load(run)
    assert model.step == summary["steps"] and model.preparation.kind == "quantile" and model.n_classes == 3
    x, y = np.load(data / "x_test.npy"), np.load(data / "y_test.npy")
    pred = model.predict(x)
    assert pred.probs.shape == (12, 3) and pred.probs.dtype == np.float32
    assert int((pred.labels == y).sum()) == summary["test_correct"]
    assert np.array_equal(model.predict(x, batch_size=5).labels, pred.labels)  # batching changes nothing
    two = model.predict(x[:2].astype(np.float64))  # any real dtype: the same bins
    assert np.array_equal(two.labels, pred.labels[:2])
    best = auxrnn.load(run, "best")
    assert best.step == summary["best_step"] and best.checkpoint.name == "best.pt"


def test_load_and_predict_permuted_idx_images_from_raw_uint8(tmp_path, capsys):
    rng = np.random.default_rng(1)
    folder, run = tmp_path / "idx", tmp_path / "run"
    folder.mkdir()
    images = {s: rng.integers(0, 256, (n, 6, 6), dtype=np.uint8) for s, n in (("train", 24), ("t10k", 10))}
    labels = {s: rng.integers(0, 2, len(a)).astype(np.uint8) for s, a in images.items()}
    for s in images:
        write_mnist_idx(folder, s, images[s], labels[s])
    summary = _train(run, "data.name=idx", f"data.options.folder={folder}", "data.options.perm_seed=5")
    model = auxrnn.load(run)
    assert model.preparation.permutation is not None and model.preparation.permutation.shape == (36,)
    pred = model.predict(images["t10k"])  # raw (N, 6, 6) images: flattened and permuted as in training
    assert int((pred.labels == labels["t10k"]).sum()) == summary["test_correct"]
    out = tmp_path / "p.npy"
    assert main(["predict", str(run), "--data", str(folder / "t10k-images-idx3-ubyte.gz"), "--out", str(out)]) == 0
    assert np.array_equal(np.load(out)["label"], pred.labels)
    with pytest.raises(ValueError, match="inputs have 35 steps, but this model reads its 36 steps"):
        model.predict(images["t10k"].reshape(10, -1)[:, :35])
    with pytest.raises(ValueError, match="integer pixels 0..255"):
        model.predict(images["t10k"].astype(np.float32))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.cuda
def test_load_on_cuda_predicts_the_cpu_probabilities(arrays_run):
    data, run, _ = arrays_run
    x = np.load(data / "x_test.npy")
    cpu, gpu = auxrnn.load(run).predict(x), auxrnn.load(run, device="cuda").predict(x)
    assert np.allclose(gpu.probs, cpu.probs, rtol=1e-4, atol=1e-5)


def test_byte_documents_and_integer_tokens_predicted_like_eval(tmp_path, capsys):
    folder = tmp_path / "csv"
    write_class_csv(folder / "train.csv", [(i % 3 + 1, f"title {i}", f"content number {i * 7}") for i in range(16)])
    write_class_csv(folder / "test.csv", CSV_ROWS)
    summary = _train(tmp_path / "text", "data.name=csv", f"data.options.folder={folder}", "data.options.max_len=40")
    model = auxrnn.load(tmp_path / "text")
    assert model.preparation.kind == "bytes" and model.preparation.max_len == 40
    truth = np.array([c - 1 for c, _, _ in CSV_ROWS])
    pred = model.predict([f"{t} {c}" for _, t, c in CSV_ROWS])
    assert int((pred.labels == truth).sum()) == summary["test_correct"]
    assert main(["predict", str(tmp_path / "text"), "--data", str(folder / "test.csv"), "--out",
                 str(tmp_path / "t.npy")]) == 0
    assert np.array_equal(np.load(tmp_path / "t.npy")["label"], pred.labels)

    summary = _train(tmp_path / "copy", "data.name=copy", "data.options.length=30", "data.options.size=32")
    from auxrnn.data import load_dataset

    test = load_dataset("copy", "test", length=30, size=32)
    x = np.stack([test[i][0].numpy() for i in range(len(test))])  # uint8 tokens (N, 30)
    pred = auxrnn.load(tmp_path / "copy").predict(x)
    assert int((pred.labels == np.array([test[i][1] for i in range(len(test))])).sum()) == summary["test_correct"]
    with pytest.raises(ValueError, match="inputs hold 9 at item 0, step 0, channel 0, outside the tokens 0..8"):
        auxrnn.load(tmp_path / "copy").predict(np.full((1, 30), 9))


@pytest.mark.parametrize("make, message", [
    (lambda d: np.save(d / "bad.npy", np.zeros((3, 40, 3), np.float32)),
     "bad.npy: inputs have 3 channels per step, but this model was trained on 2"),
    (lambda d: np.save(d / "bad.npy", np.full((2, 40, 2), np.nan, np.float32)),
     "bad.npy: inputs hold NaN at item 0, step 0, channel 0"),
    (lambda d: (d / "bad.csv").write_text("1,2,3,4\n5,x,7,8\n"), "bad.csv, line 2: 'x' is not a number"),
    (lambda d: (d / "bad.csv").write_text("1,2,3,4\n5,6\n"), "bad.csv, line 2: 2 values, but the first row has 4"),
    (lambda d: (d / "bad.csv").write_text("1,2,3\n"), "cannot be read as (N, T, 2)"),
    (lambda d: np.savez(d / "bad.npz", a=np.zeros(3), b=np.zeros(3)), "bad.npz: holds a, b; name the inputs x"),
    (lambda d: (d / "bad.bin").write_bytes(b"\x00\x00\x99\x01"), "bad.bin: bad IDX magic number"),
    (lambda d: np.save(d / "bad.npy", np.array([{"a": 1}], dtype=object)), "bad.npy: x holds Python objects"),
])
def test_bad_inputs_are_refused_naming_the_file_and_nothing_is_written(arrays_run, tmp_path, capsys, make, message):
    _, run, _ = arrays_run
    make(tmp_path)
    (bad,) = [p for p in tmp_path.iterdir() if p.name.startswith("bad")]
    out = tmp_path / "out" / "p.csv"
    assert main(["predict", str(run), "--data", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(bad) in err
    assert not out.exists() and (not out.parent.exists() or list(out.parent.iterdir()) == [])


def test_predict_refuses_a_bad_output_name_and_an_absent_best_checkpoint(tmp_path, capsys):
    data, run = tmp_path / "data", tmp_path / "run"
    _arrays(data)
    _train(run, "data.name=arrays", f"data.options.path={data}", "data.options.bins=16")
    assert main(["predict", str(run), "--data", str(data / "x_test.npy"), "--out", str(tmp_path / "p.txt")]) == 2
    assert "p.txt: predictions are written as .npy or .csv" in capsys.readouterr().err
    for cmd in (["eval", str(run)], ["predict", str(run), "--data", str(data / "x_test.npy"), "--out",
                                     str(tmp_path / "p.csv")]):
        assert main([*cmd, "--checkpoint", "best"]) == 2
        assert "no best checkpoint at" in capsys.readouterr().err
    assert not (tmp_path / "p.csv").exists()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["checkpoint"] == "checkpoints/last.pt" and "best_checkpoint" not in summary


def test_keep_best_needs_a_validation_split(tmp_path, capsys):
    assert main(["train", "--preset", "none", "data.name=copy", "train.steps=1", "train.keep_best=true",
                 f"train.out={tmp_path / 'run'}"]) == 2
    assert "train.keep_best=true chooses the best model on the validation split" in capsys.readouterr().err


@pytest.mark.determinism
def test_best_checkpoint_survives_a_resume(tmp_path):
    data, run = tmp_path / "data", tmp_path / "run"
    _arrays(data)
    common = ["data.name=arrays", f"data.options.path={data}", "data.options.bins=16", "data.val_size=8",
              "train.eval_every=2", "train.keep_best=true", "train.seed=3"]
    args = ["train", "--preset", "none", "data.batch_size=8", *TINY_MODEL, "model.aux=reconstruct",
            "train.pretrain_steps=2", "train.steps=8", "train.tensorboard=false", f"train.out={run}",
            "--no-progress", SAME_THREADS, *common]
    assert main([*args, "--until-step", "5"]) == 0
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    resumed = json.loads((run / "summary.json").read_text())
    straight = _train(tmp_path / "straight", *common)
    assert (resumed["best_step"], resumed["best_val_accuracy"]) == (straight["best_step"],
                                                                    straight["best_val_accuracy"])


@pytest.mark.slow
def test_import_auxrnn_stays_light_and_load_is_there():
    code = "import sys, auxrnn; assert 'torch' not in sys.modules; from auxrnn import load; print(load.__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "auxrnn.train.trained"


@needs_mnist
@pytest.mark.slow
def test_real_mnist_predicted_from_raw_uint8_images_and_the_idx_file(tmp_path, monkeypatch, capsys):
    """pMNIST: raw (N, 28, 28) uint8 images and the t10k IDX file give eval's test accuracy, no dataset needed."""
    monkeypatch.setenv("AUXRNN_MNIST_DIR", str(REAL_MNIST))
    run = tmp_path / "run"
    summary = _train(run, "data.name=pmnist", f"data.root={tmp_path / 'root'}", "data.batch_size=16",
                     "train.pretrain_steps=0", "train.steps=3", "model.aux=none", "model.hidden=8")
    images = formats.read_idx_images(_mnist_file("t10k-images-idx3-ubyte"))
    labels = formats.read_idx_labels(_mnist_file("t10k-labels-idx1-ubyte"))
    pred = auxrnn.load(run).predict(images)
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert int((pred.labels == labels).sum()) == summary["test_correct"]
    out = tmp_path / "t10k.csv"
    assert main(["predict", str(run), "--data", str(_mnist_file("t10k-images-idx3-ubyte")), "--out", str(out)]) == 0
    assert np.array_equal(np.loadtxt(out, delimiter=",", skiprows=1, usecols=0).astype(int), pred.labels)


def _mnist_file(name):
    raw = REAL_MNIST / name
    return raw if raw.is_file() else REAL_MNIST / f"{name}.gz"


def test_image_preparation_flattens_grays_and_permutes_as_the_datasets_do():
    from auxrnn.data import sequences
    from auxrnn.data.preparation import InputPreparation

    rgb = np.random.default_rng(4).integers(0, 256, (2, 4, 5, 3), dtype=np.uint8)
    x, lengths = InputPreparation.of("cifar10", {"grayscale": True}, {}, (256,))(rgb)
    assert x.shape == (2, 20, 1) and lengths.tolist() == [20, 20]
    assert np.array_equal(x[..., 0], sequences.rgb_to_gray(sequences.image_to_sequence(rgb)))
    x, _ = InputPreparation.of("cifar10", {}, {}, (256, 256, 256))(rgb)
    assert np.array_equal(x, sequences.image_to_sequence(rgb))  # (N, H, W, 3) -> (N, H*W, 3)
    perm = sequences.make_permutation(20, 7)
    x, _ = InputPreparation.of("pmnist", {}, {"permutation": perm}, (256,))(rgb[..., 0])
    assert np.array_equal(x[..., 0], sequences.image_to_sequence(rgb[..., 0])[:, perm.numpy()])
    with pytest.raises(ValueError, match="no input preparation is known for dataset 'nope'"):
        InputPreparation.of("nope", {}, {}, (2,))
