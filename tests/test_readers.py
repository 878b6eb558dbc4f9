"""One reader for every door (issue 30, section 5): train, eval, predict and auxrnn.load(...).predict read the
same file formats with the same checks, and what a run knows about its inputs is applied wherever it is scored.

Each case here used to be read silently (a wrong answer with exit 0) or refused with a misleading message.
"""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

import auxrnn
from auxrnn.cli import main
from auxrnn.data import formats
from auxrnn.data.array_files import open_arrays
from auxrnn.data.preparation import InputPreparation
from auxrnn.data.prediction_files import read_inputs
from auxrnn.train.evaluation import carried_options
from conftest import SAME_THREADS, TINY_MODEL, write_mnist_idx
from fixtures_formats import REAL_MNIST, have_real_mnist

needs_mnist = pytest.mark.skipif(not have_real_mnist(), reason="set AUXRNN_MNIST_DIR to a folder with the real MNIST files")


def _train(run, *extra):
    args = ["train", "--preset", "none", "data.batch_size=8", *TINY_MODEL, "model.aux=none", "train.steps=2",
            "train.tensorboard=false", f"train.out={run}", "--no-progress", SAME_THREADS, *extra]
    assert main(args) == 0
    return json.loads((run / "summary.json").read_text())


@pytest.fixture(scope="module")
def idx_run(tmp_path_factory):
    """A tiny run on permuted 6 x 6 IDX images (perm_seed=5)."""
    root = tmp_path_factory.mktemp("idx_run")
    rng = np.random.default_rng(1)
    folder, run = root / "idx", root / "run"
    folder.mkdir()
    for split, n in (("train", 16), ("t10k", 10)):
        write_mnist_idx(folder, split, rng.integers(0, 256, (n, 6, 6), dtype=np.uint8),
                        rng.integers(0, 2, n).astype(np.uint8))
    _train(run, "data.name=idx", f"data.options.folder={folder}", "data.options.perm_seed=5")
    return folder, run


# ------------------------------------------------------------------------------------ .npz: the names training reads
def test_a_misnamed_lengths_array_is_refused_not_ignored(tmp_path):
    np.savez(tmp_path / "x.npz", x=np.zeros((4, 10), np.uint8), length=np.full(4, 6))
    with pytest.raises(ValueError, match=r"x.npz: holds x, length; name the inputs x \(optional lengths, y\).*"
                                         r"\(length is none of these\)"):
        read_inputs(tmp_path / "x.npz")
    np.savez(tmp_path / "ok.npz", x=np.zeros((4, 10), np.uint8), lengths=np.full(4, 6), y=np.zeros(4, np.int64))
    x, lengths = read_inputs(tmp_path / "ok.npz")
    assert x.shape == (4, 10) and lengths.tolist() == [6] * 4
    np.savez(tmp_path / "split.npz", x_train=np.zeros((2, 10)), y_train=np.zeros(2, int), x_test=np.ones((3, 10)),
             y_test=np.zeros(3, int), lengths_train=np.full(2, 4), lengths_test=np.full(3, 5))
    x, lengths = read_inputs(tmp_path / "split.npz")  # the test split, as eval scores it
    assert x.shape == (3, 10) and lengths.tolist() == [5, 5, 5]
    np.savez(tmp_path / "lone.npz", np.zeros((2, 10)))  # arr_0: a lone array of any name is x
    assert read_inputs(tmp_path / "lone.npz")[0].shape == (2, 10)


def test_an_object_array_in_lengths_is_named_as_lengths(tmp_path):
    np.savez(tmp_path / "x.npz", x=np.zeros((2, 10)), lengths=np.array([3, None], dtype=object))
    with pytest.raises(ValueError, match=r"x.npz: lengths holds Python objects"):
        read_inputs(tmp_path / "x.npz")


def test_a_text_file_named_npz_is_called_what_it_is_by_train_and_predict(tmp_path):
    (tmp_path / "x.npz").write_text("1,2,3\n4,5,6\n")
    for read in (read_inputs, open_arrays):
        with pytest.raises(ValueError, match=r"x.npz: not an .npz archive \(a zip of .npy arrays") as err:
            read(tmp_path / "x.npz")
        assert "pickled" not in str(err.value)
    with zipfile.ZipFile(tmp_path / "z.npz", "w") as z:
        z.writestr("x.npy", b"not an array")
    with pytest.raises(ValueError, match=r"z.npz: x is not a readable array"):
        read_inputs(tmp_path / "z.npz")


def test_an_idx_file_with_zero_images_says_so(tmp_path):
    write_mnist_idx(tmp_path, "t10k", np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.uint8))
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte.gz: IDX header declares shape \(0, 28, 28\): no items"):
        read_inputs(tmp_path / "t10k-images-idx3-ubyte.gz")


# ------------------------------------------------------------------------------------ shapes and dtypes
def test_a_two_dimensional_array_is_never_reshaped_into_channels():
    prep = InputPreparation.of("arrays", {}, {"vocab": np.array([4, 4, 4])}, (4, 4, 4))
    with pytest.raises(ValueError, match=r"inputs of shape \(5, 48\) have one value per step, but this model reads 3 "
                                         r"channels: give \(N, T, 3\)"):
        prep(np.zeros((5, 48), np.int64))
    with pytest.raises(ValueError, match=r"shape \(16, 3\) have one value per step.*a single item too: x\[None\]"):
        prep(np.zeros((16, 3), np.int64))  # one item (T, C) without its batch axis
    x, lengths = prep(np.zeros((1, 16, 3), np.int64))
    assert x.shape == (1, 16, 3) and lengths.tolist() == [16]


def test_a_single_one_channel_item_without_its_batch_axis_is_not_read_as_one_step_items():
    prep = InputPreparation.of("arrays", {}, {"vocab": np.array([4])}, (4,))
    with pytest.raises(ValueError, match=r"\(30, 1\) would be 30 items of a single step each.*\(1, 30\)"):
        prep(np.zeros((30, 1), np.int64))  # one item (T, 1): once read as 30 items of one step
    x, lengths = prep(np.zeros((1, 30), np.int64))
    assert x.shape == (1, 30, 1) and lengths.tolist() == [30]
    assert prep(np.zeros((1, 1), np.int64))[0].shape == (1, 1, 1)  # one item of one step stays possible


def test_a_csv_row_of_T_times_C_numbers_is_read_step_major_by_its_reader(tmp_path):
    (tmp_path / "x.csv").write_text("0,1,2,3,0,1\n")
    x, _ = read_inputs(tmp_path / "x.csv", channels=3)
    assert x.shape == (1, 2, 3) and x[0, 1].tolist() == [3, 0, 1]
    with pytest.raises(ValueError, match=r"x.csv: rows of 6 values cannot be read as \(N, T, 4\)"):
        read_inputs(tmp_path / "x.csv", channels=4)


def test_complex_inputs_are_refused_not_cut_to_their_real_part():
    prep = InputPreparation.of("copy", {}, {}, (10,))
    with pytest.raises(ValueError, match=r"inputs must be integers or real numbers, got dtype complex128"):
        prep(np.ones((2, 5), np.complex128))


# ------------------------------------------------------------------------------------ CSV documents as training reads them
@pytest.mark.parametrize("text, message", [
    ("title,content,extra\nA,b,c\n", None),  # 3 fields: class,title,content; the header is refused as training does
    ("label,title,text\n1,A,b\n", r"x.csv, line 1: class 'label' is not an integer; this first row looks like a header"),
    ("A,b\n1,C,d\n", r"x.csv, line 2: 3 fields, but the first row has 2; every row must be title,content or"),
    ("1,A,b,c\n", r"x.csv, line 1: 4 fields, but expected title,content or class,title,content"),
])
def test_csv_documents_with_a_header_or_mixed_field_counts_are_refused(tmp_path, text, message):
    (tmp_path / "x.csv").write_text(text)
    if message is None:
        with pytest.raises(ValueError, match=r"class 'title' is not an integer"):
            read_inputs(tmp_path / "x.csv", documents=True)
        return
    with pytest.raises(ValueError, match=message):
        read_inputs(tmp_path / "x.csv", documents=True)


def test_csv_document_headers_training_skips_are_skipped_and_invalid_utf8_is_refused(tmp_path):
    (tmp_path / "a.csv").write_text("title,content\nA,b\nC,d\n")
    (tmp_path / "b.csv").write_text("class,title,content\n1,A,b\n2,C,d\n")
    for name in ("a.csv", "b.csv"):
        assert read_inputs(tmp_path / name, documents=True)[0] == ["A b", "C d"]
    (tmp_path / "c.csv").write_bytes(b"A,b\nC,\xff\xfe\n")
    with pytest.raises(ValueError, match=r"c.csv, line 2: text is not valid UTF-8"):
        read_inputs(tmp_path / "c.csv", documents=True)


# ------------------------------------------------------------------------------------ messages and sizes at the doors
def test_a_tampered_preset_is_one_clear_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train.steps: !!python/object/apply:os.system ['echo hi']\n")
    assert main(["train", "--preset", str(bad), f"train.out={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: not a readable preset" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_batch_size_zero_is_refused_not_replaced_by_the_default(idx_run, tmp_path, capsys):
    folder, run = idx_run
    images = formats.read_idx_images(folder / "t10k-images-idx3-ubyte.gz")
    with pytest.raises(ValueError, match=r"batch_size=0 is invalid: give the items per batch"):
        auxrnn.load(run).predict(images, batch_size=0)
    out = tmp_path / "p.csv"
    assert main(["predict", str(run), "--data", str(folder / "t10k-images-idx3-ubyte.gz"), "--out", str(out),
                 "--batch-size", "0"]) == 2
    assert "--batch-size 0 is invalid" in capsys.readouterr().err and not out.exists()


# ------------------------------------------------------------------------------------ eval --data keeps the run's inputs
def test_eval_on_data_without_the_runs_permutation_is_refused(idx_run, tmp_path, capsys):
    folder, run = idx_run
    assert main(["eval", str(run), "--out", str(tmp_path / "same.json")]) == 0
    assert main(["eval", str(run), "--data", "idx", f"data.options.folder={folder}", "data.options.perm_seed=null",
                 "--out", str(tmp_path / "e.json")]) == 2
    err = capsys.readouterr().err
    assert "the model was trained on inputs with a permutation, which 'idx'" in err and "refusing to evaluate" in err
    assert not (tmp_path / "e.json").exists()


def test_eval_on_another_dataset_keeps_the_runs_input_options():
    assert carried_options("pmnist", {}, "idx") == {"perm_seed": 0, "side": None}
    assert carried_options("idx", {"folder": "/a", "perm_seed": 3, "delay": 4}, "pmnist") == \
        {"perm_seed": 3, "side": None, "delay": 4}
    assert carried_options("pmnist", {"perm_seed": 2}, "mnist") == {"side": None}  # mnist has no permutation:
    # restored_model then refuses, as the test above shows


@needs_mnist
@pytest.mark.slow
def test_a_pmnist_run_scored_on_the_idx_files_reads_them_permuted(tmp_path, monkeypatch, capsys):
    """The issue's case: `eval RUN --data idx data.options.folder=MNIST` on a pMNIST run scored chance."""
    monkeypatch.setenv("AUXRNN_MNIST_DIR", str(REAL_MNIST))
    run = tmp_path / "run"
    summary = _train(run, "data.name=pmnist", f"data.root={tmp_path / 'root'}", "data.batch_size=16",
                     "train.steps=3", "model.hidden=8", "data.eval_batch_size=1000")
    assert main(["eval", str(run), "--data", "idx", f"data.options.folder={REAL_MNIST}", "--out",
                 str(tmp_path / "e.json")]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["correct"] == summary["test_correct"]
