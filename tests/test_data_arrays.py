"""The `arrays` source: every layout, every refusal (and nothing written), the quantiser fitted on train only,
data_state, memory-mapped reading, items and lengths, the CLI."""
from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from auxrnn.cli import main
from auxrnn.data import (
    MissingArrayFile,
    NumpyArrays,
    Quantiser,
    collate_sequences,
    dataset_options,
    load_dataset,
    static_info,
)
from auxrnn.data import array_files
from auxrnn.data.datasets import arrays as arrays_mod
from auxrnn.data.quantize import Sampler, quantile_edges, uniform_edges
from fixtures_formats import small_mnist, write_mnist_folder

N_TRAIN, N_TEST, T = 40, 16, 30


# ------------------------------------------------------------------------------------------- fixtures
def make_x(n: int, c: int | None, dtype, seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (n, T) if c is None else (n, T, c)
    if np.issubdtype(np.dtype(dtype), np.floating):
        return (rng.normal(size=shape) + shift).astype(dtype)
    return rng.integers(0, 10, size=shape).astype(dtype)


def make_arrays(c=None, dtype=np.float32, lengths=False, seed=0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed + 100)
    out = {
        "x_train": make_x(N_TRAIN, c, dtype, seed), "y_train": np.arange(N_TRAIN) % 4,
        "x_test": make_x(N_TEST, c, dtype, seed + 1), "y_test": np.arange(N_TEST)[::-1] % 4,
    }
    if lengths:
        out["lengths_train"] = rng.integers(1, T + 1, N_TRAIN)
        out["lengths_test"] = rng.integers(1, T + 1, N_TEST)
    return out


def as_single(a: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {"x": np.concatenate([a["x_train"], a["x_test"]]), "y": np.concatenate([a["y_train"], a["y_test"]])}
    if "lengths_train" in a:
        out["lengths"] = np.concatenate([a["lengths_train"], a["lengths_test"]])
    return out


def write(where: Path, arrays: dict[str, np.ndarray], kind: str = "npy") -> Path:
    """A folder of .npy files (kind "npy") or one .npz file (kind "npz") holding `arrays`."""
    if kind == "npz":
        where.parent.mkdir(parents=True, exist_ok=True)
        np.savez(where, **arrays)
        return where
    where.mkdir(parents=True, exist_ok=True)
    for k, v in arrays.items():
        np.save(where / f"{k}.npy", v, allow_pickle=v.dtype.hasobject)
    return where


def tree(p: Path) -> set[str]:
    return {str(q.relative_to(p)) for q in p.rglob("*")}


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("AUXRNN_DATA", str(tmp_path / "default_root"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ------------------------------------------------------------------------------------------- layouts
@pytest.mark.parametrize("kind", ["npy", "npz"])
@pytest.mark.parametrize("single", [False, True])
@pytest.mark.parametrize("lengths", [False, True])
@pytest.mark.parametrize("c, dtype", [(None, np.float32), (3, np.float64), (None, np.int64), (2, np.uint8)])
def test_every_layout_loads(isolated, kind, single, lengths, c, dtype):
    a = make_arrays(c, dtype, lengths)
    src = as_single(a) if single else a
    path = write(isolated / ("data.npz" if kind == "npz" else "data"), src, kind)
    opts = {"test_size": N_TEST} if single else {}
    before = tree(isolated)
    tr = load_dataset("arrays", "train", root=isolated / "root", path=path, **opts)
    te = load_dataset("arrays", "test", root=isolated / "root", path=path, **opts)
    assert tree(isolated) == before  # nothing written, no cache folder
    assert (len(tr), len(te)) == (N_TRAIN, N_TEST)
    C = 1 if c is None else c
    real = np.issubdtype(np.dtype(dtype), np.floating)
    assert tr.info.channels == ((256,) * C if real else (10,) * C)  # quantised, or the integers as tokens
    assert tr.info.n_classes == 4 and tr.info.variable_length is lengths
    assert tr.kind == ("quantile" if real else "tokens")
    for ds in (tr, te):
        x, y = ds[0]
        assert isinstance(y, int) and x.dtype == torch.uint8
        n = int(ds.lengths()[0])
        assert x.shape == ((n,) if c is None else (n, c))
        assert n == (T if not lengths else n)
        assert int(x.max()) < ds.info.channels[0]
        if not real and not single:  # integers are their own tokens
            raw = a[f"x_{ds.split}"][0][:n]
            assert np.array_equal(x.numpy(), raw)
    if lengths:
        assert tr.info.seq_len == int(tr.lengths().max())
        assert not single or sorted(tr.lengths().tolist() + te.lengths().tolist()) == sorted(src["lengths"].tolist())
        xb, lb, yb = collate_sequences([tr[i] for i in range(4)])
        assert lb.tolist() == tr.lengths()[:4].tolist() and xb.shape[1] == int(lb.max())
    else:
        assert tr.info.seq_len == T
    assert tr.data_state().keys() == te.data_state().keys()
    assert all(torch.equal(tr.data_state()[k], te.data_state()[k]) for k in tr.data_state())
    if kind == "npy" and not single:
        assert isinstance(tr._x, np.memmap) and isinstance(te._x, np.memmap)


def test_single_layout_split_is_deterministic_and_its_own_seed(isolated):
    src = as_single(make_arrays())
    path = write(isolated / "one", src)
    n = N_TRAIN + N_TEST

    def rows(seed, size, split):
        torch.manual_seed(123 + seed)  # the training seed plays no part
        np.random.seed(7)
        ds = load_dataset("arrays", split, path=path, test_size=size, split_seed=seed)
        return ds._rows.tolist()

    tr, te = rows(0, 0.25, "train"), rows(0, 0.25, "test")
    assert len(te) == round(0.25 * n) and sorted(tr + te) == list(range(n)) and not set(tr) & set(te)
    assert rows(0, 0.25, "test") == te and rows(1, 0.25, "test") != te
    assert len(rows(0, 10, "test")) == 10 and rows(0, "10", "test") == rows(0, 10, "test")
    ds = load_dataset("arrays", "test", path=path, test_size=0.25)
    assert ds.data_state()["split_digest"].dtype == torch.uint8
    other = load_dataset("arrays", "test", path=path, test_size=0.25, split_seed=1)
    assert not torch.equal(ds.data_state()["split_digest"], other.data_state()["split_digest"])


def test_options_and_static_info(isolated):
    assert dataset_options("arrays") == ["path", "n_classes", "test_size", "split_seed", "bins", "quantiser",
                                         "max_vocab", "delay", "delay_fill", "delay_seed"]
    path = write(isolated / "d", make_arrays())
    assert static_info("arrays", {"path": str(path)}) is None  # the files decide
    assert static_info("arrays", {"path": str(path), "n_classes": 4}) is None
    ds = load_dataset("arrays", "train", path=path, n_classes=7, bins=16)
    assert ds.info.n_classes == 7 and ds.info.channels == (16,) and ds.class_counts().tolist() == [10] * 4 + [0] * 3
    assert "layout: split" in repr(ds) and "quantised (quantile, 16 bins)" in repr(ds)


# ------------------------------------------------------------------------------------------- refusals
def _bad_cases():
    """(name, how to break a good train/test folder, kind, options, message regex)."""
    def setf(**kw):
        return lambda a: a.update(kw)

    nan = make_x(N_TRAIN, None, np.float32, 0)
    nan[5, 7] = np.nan
    inf = make_x(N_TEST, 2, np.float64, 1)
    inf[3, 2, 1] = -np.inf
    obj = np.empty(N_TRAIN, dtype=object)
    obj[:] = [[1.0]] * N_TRAIN
    return [
        ("n_y", setf(y_train=np.zeros(N_TRAIN - 1, dtype=np.int64)), "npy", {},
         r"y_train\.npy: y_train: has 39 entries but .*x_train\.npy: x_train has 40 items; N must agree"),
        ("n_lengths", setf(lengths_train=np.ones(N_TRAIN + 1, dtype=np.int64),
                           lengths_test=np.ones(N_TEST, dtype=np.int64)), "npy", {},
         r"lengths_train\.npy: lengths_train: has 41 entries but .*x_train has 40 items; N must agree"),
        ("t_mismatch", setf(x_test=np.zeros((N_TEST, T + 1), np.float32)), "npy", {},
         r"x_test\.npy: x_test: has 31 steps per item but .*x_train\.npy: x_train has 30; T must agree"),
        ("c_mismatch", setf(x_train=make_x(N_TRAIN, 2, np.float32, 0), x_test=make_x(N_TEST, 3, np.float32, 0)),
         "npy", {}, r"x_test: has 3 channels but .*x_train has 2 channels; C must agree between train and test"),
        ("c_axis", setf(x_test=make_x(N_TEST, 1, np.float32, 0)), "npz", {},
         r"data\.npz: x_test: has 1 channels but .*data\.npz: x_train has no channel axis \(N, T\)"),
        ("kind_mismatch", setf(x_test=make_x(N_TEST, None, np.int64, 0)), "npy", {},
         r"x_test: holds integer values \(int64\) but .*x_train holds real values \(float32\)"),
        ("float_labels", setf(y_train=np.arange(N_TRAIN, dtype=np.float64) % 4), "npy", {},
         r"y_train\.npy: y_train: must hold integer class labels, got dtype float64"),
        ("negative_label", setf(y_test=-(np.arange(N_TEST) % 2)), "npz", {},
         r"data\.npz: y_test: holds label -1 at row 1; labels must be 0\.\.n_classes-1"),
        ("label_vs_n_classes", lambda a: None, "npy", {"n_classes": 3},
         r"y_train\.npy: y_train: holds label 3 at row 3, outside 0\.\.2 \(n_classes=3\)"),
        ("test_label_above_train", setf(y_test=np.full(N_TEST, 4)), "npy", {},
         r"y_test\.npy: y_test: holds label 4 at row 0, but the training labels are 0\.\.3 \(n_classes = largest "
         r"training label \+ 1 = 4\); give option n_classes"),
        ("length_zero", setf(lengths_train=np.r_[np.ones(N_TRAIN - 1, np.int64), 0],
                             lengths_test=np.ones(N_TEST, np.int64)), "npy", {},
         r"lengths_train\.npy: lengths_train: holds length 0 at row 39, outside 1\.\.30 \(the 30 steps of x_train\)"),
        ("length_above_t", setf(lengths_train=np.ones(N_TRAIN, np.int64),
                                lengths_test=np.full(N_TEST, T + 1)), "npz", {},
         r"data\.npz: lengths_test: holds length 31 at row 0, outside 1\.\.30"),
        ("float_lengths", setf(lengths_train=np.ones(N_TRAIN), lengths_test=np.ones(N_TEST)), "npy", {},
         r"lengths_train: must hold integer lengths, got dtype float64"),
        ("nan_train", setf(x_train=nan), "npy", {},
         r"x_train\.npy: x_train: holds NaN at row 5, step 7, channel 0; real positions must be finite"),
        ("inf_test", setf(x_train=make_x(N_TRAIN, 2, np.float64, 0), x_test=inf), "npz", {},
         r"data\.npz: x_test: holds inf at row 3, step 2, channel 1; real positions must be finite"),
        ("empty_test", setf(x_test=np.zeros((0, T), np.float32), y_test=np.zeros(0, np.int64)), "npy", {},
         r"x_test\.npy: x_test: is empty \(shape \(0, 30\)\); every split needs at least one item"),
        ("no_steps", setf(x_train=np.zeros((N_TRAIN, 0), np.float32)), "npy", {},
         r"x_train: is empty \(shape \(40, 0\)\)"),
        ("object_npy", setf(x_train=obj), "npy", {},
         r"x_train\.npy: x_train holds Python objects \(dtype object\), which auxrnn never unpickles "
         r"\(allow_pickle=False\)"),
        ("object_npz", setf(y_test=np.array([None] * N_TEST, dtype=object)), "npz", {},
         r"data\.npz: y_test holds Python objects \(dtype object\)"),
        ("one_d", setf(x_train=np.zeros(N_TRAIN, np.float32)), "npy", {},
         r"x_train: must have shape \(N, T\) or \(N, T, C\), got \(40,\)"),
        ("complex", setf(x_train=np.zeros((N_TRAIN, T), np.complex64)), "npy", {},
         r"x_train: must hold real numbers or integers, got dtype complex64"),
        ("one_lengths", setf(lengths_train=np.ones(N_TRAIN, np.int64)), "npy", {},
         r"lengths_train\.npy is there but lengths_test\.npy is not; give the lengths of both splits or of neither"),
        ("test_size_with_split", lambda a: None, "npy", {"test_size": 0.2},
         r"has its own train/test split \(x_train, x_test\); option test_size only applies to a single x and y"),
        ("bins", lambda a: None, "npy", {"bins": 1}, r"bins must be an integer in 2\.\.65536, got 1"),
        ("quantiser", lambda a: None, "npy", {"quantiser": "kmeans"},
         r"unknown quantiser 'kmeans'; valid choices: quantile, uniform, none"),
        ("unknown_npz_key", setf(x_valid=np.zeros((2, T), np.float32)), "npz", {},
         r"data\.npz: unexpected array\(s\) x_valid; an \.npz holds x_train, y_train, x_test, y_test"),
        ("int_test_token", setf(x_train=np.zeros((N_TRAIN, T), np.uint8) + 3,
                                x_test=np.r_[np.zeros((N_TEST - 1, T), np.uint8), np.full((1, T), 9, np.uint8)]),
         "npy", {},
         r"x_test\.npy: x_test: holds token 9 at row 15, step 0, channel 0, but channel 0 of the training split has "
         r"tokens 0\.\.3; integer inputs used as tokens need every test value within the training vocabulary"),
    ]


@pytest.mark.parametrize("case", _bad_cases(), ids=lambda c: c[0])
def test_bad_inputs_are_refused_and_nothing_is_written(isolated, case):
    name, breaker, kind, opts, message = case
    a = make_arrays()
    breaker(a)
    path = write(isolated / ("data.npz" if kind == "npz" else "data"), a, kind)
    before = tree(isolated)
    for split in ("train", "test") if name not in ("inf_test", "int_test_token") else ("test",):
        with pytest.raises(ValueError, match=message):
            load_dataset("arrays", split, root=isolated / "root", path=path, **opts)
    assert tree(isolated) == before  # no cache, no part file, no root folder


def test_test_values_are_checked_by_the_test_split(isolated):
    """Scanning the test inputs is the test split's job: the train split loads, the test split refuses."""
    a = make_arrays(2, np.float64)
    a["x_test"][3, 2, 1] = np.inf
    path = write(isolated / "d", a)
    assert len(load_dataset("arrays", "train", path=path)) == N_TRAIN
    with pytest.raises(ValueError, match="x_test: holds inf at row 3, step 2, channel 1"):
        load_dataset("arrays", "test", path=path)


def test_padding_may_hold_anything(isolated):
    a = make_arrays(lengths=True)
    pad = np.arange(T)[None, :] >= a["lengths_train"][:, None]
    a["x_train"][pad] = np.nan
    a["x_test"][np.arange(T)[None, :] >= a["lengths_test"][:, None]] = np.inf
    path = write(isolated / "d", a)
    tr, te = load_dataset("arrays", "train", path=path), load_dataset("arrays", "test", path=path)
    real = a["x_train"][~pad]
    assert np.array_equal(tr.quantiser.edges[0], quantile_edges(real.astype(np.float64), 256))


@pytest.mark.parametrize("content, message", [
    ({}, r"no arrays found; expected x_train\.npy, y_train\.npy, x_test\.npy, y_test\.npy \(optional "
         r"lengths_train\.npy, lengths_test\.npy\), or x\.npy and y\.npy \(optional lengths\.npy\) with option test_size"),
    ({"x_train": 1, "y_train": 1}, r"missing x_test\.npy, y_test\.npy; the train/test layout needs x_train\.npy, "
                                   r"y_train\.npy, x_test\.npy, y_test\.npy"),
    ({"x": 1}, r"missing y\.npy; the single layout needs x\.npy, y\.npy \(optional lengths\.npy\)"),
    ({"x": 1, "y": 1, "x_train": 1}, r"holds both x_train\.npy and x\.npy, y\.npy; keep one layout"),
])
def test_missing_files_list_what_was_expected(isolated, content, message):
    folder = isolated / "d"
    folder.mkdir()
    for k in content:
        np.save(folder / f"{k}.npy", np.zeros((3, T), np.float32) if k.startswith("x") else np.zeros(3, np.int64))
    before = tree(isolated)
    with pytest.raises(MissingArrayFile if "keep one" not in message else ValueError, match=message) as err:
        load_dataset("arrays", "train", path=folder)
    assert isinstance(err.value, ValueError) and str(folder) in str(err.value)
    assert tree(isolated) == before


def test_path_and_test_size_errors(isolated):
    with pytest.raises(ValueError, match=r"the arrays dataset needs option path="):
        load_dataset("arrays", "train")
    with pytest.raises(FileNotFoundError, match=r"nowhere: no such file or folder"):
        load_dataset("arrays", "train", path=isolated / "nowhere")
    (isolated / "x.csv").write_text("1,2\n")
    with pytest.raises(ValueError, match=r"x\.csv: the arrays dataset reads a folder of \.npy files or an \.npz file"):
        load_dataset("arrays", "train", path=isolated / "x.csv")
    path = write(isolated / "one.npz", as_single(make_arrays()), "npz")
    with pytest.raises(ValueError, match=r"one\.npz: holds x and y only \(no x_train/x_test\); give option test_size"):
        load_dataset("arrays", "train", path=path)
    assert len(load_dataset("arrays", "test", path=path, test_size=1.0)) == 1  # a whole number: a count
    for bad in (0, 0.0, 56, 2.5, 0.001, -0.5):
        with pytest.raises(ValueError, match=r"test_size=\S+ leaves an empty split of the 56 items of .*one\.npz: "
                                             r"give a fraction in \(0, 1\) or a count in 1\.\.55"):
            load_dataset("arrays", "test", path=path, test_size=bad)
    bad = np.zeros((3, T), np.float32)
    (isolated / "c").mkdir()
    (isolated / "c" / "x_train.npy").write_bytes(b"not an npy file")
    for k in ("y_train", "x_test", "y_test"):
        np.save(isolated / "c" / f"{k}.npy", bad if k.startswith("x") else np.zeros(3, np.int64))
    with pytest.raises(ValueError, match=r"x_train\.npy: x_train is not a readable \.npy array"):
        load_dataset("arrays", "train", path=isolated / "c")


def test_single_layout_label_message_names_the_split(isolated):
    src = as_single(make_arrays())
    src["y"][:] = 0
    src["y"][-1] = 5  # one item of class 5: wherever it lands in test, train has no class above 0
    path = write(isolated / "one", src)
    n_test = None
    for seed in range(20):
        ds_rows = np.sort(np.random.default_rng([seed, array_files.SPLIT_SALT]).permutation(56)[:8])
        if 55 in ds_rows:
            n_test = seed
            break
    assert n_test is not None
    with pytest.raises(ValueError, match=rf"y\.npy: y: holds label 5 at row 55 \(the test part drawn with "
                                         rf"split_seed={n_test}\), but the training labels are 0\.\.0"):
        load_dataset("arrays", "train", path=path, test_size=8, split_seed=n_test)
    assert load_dataset("arrays", "train", path=path, test_size=8, split_seed=n_test, n_classes=6).info.n_classes == 6


# ------------------------------------------------------------------------------------------- quantiser
def test_quantiser_is_fit_on_train_only(isolated):
    """Test data in a far range must not move the edges: this fails if a single test value leaks into the fit."""
    a = make_arrays(2, np.float64)
    a["x_test"] = a["x_test"] * 100 + 1000  # nothing like the training values
    path = write(isolated / "d", a)
    tr, te = load_dataset("arrays", "train", path=path), load_dataset("arrays", "test", path=path)
    expect = np.stack([quantile_edges(a["x_train"][..., c].ravel(), 256) for c in range(2)])
    assert np.array_equal(tr.quantiser.edges, expect) and np.array_equal(te.quantiser.edges, expect)
    assert tr.quantiser.edges.max() < 10
    assert int(te[0][0].min()) == 255  # every test value lies above the last training edge
    # the same training files with another test file: the very same data state
    b = dict(a, x_test=make_x(N_TEST, 2, np.float64, 9))
    other = load_dataset("arrays", "test", path=write(isolated / "e", b))
    assert all(torch.equal(other.data_state()[k], te.data_state()[k]) for k in te.data_state())


def test_uniform_quantiser_clips_to_the_percentiles(isolated):
    a = make_arrays()
    a["x_train"][0, :] = np.linspace(-1000, 1000, T)  # outliers beyond the 0.5 / 99.5 % percentiles
    path = write(isolated / "d", a)
    ds = load_dataset("arrays", "train", path=path, quantiser="uniform", bins=8)
    lo, hi = np.percentile(a["x_train"].astype(np.float64), [0.5, 99.5])
    assert np.allclose(ds.quantiser.edges[0], lo + (hi - lo) * np.arange(1, 8) / 8)
    assert np.array_equal(ds.quantiser.edges[0], uniform_edges(a["x_train"].ravel(), 8))
    x0 = ds[0][0]
    assert int(x0[0]) == 0 and int(x0[-1]) == 7 and ds.kind == "uniform"


def test_quantiser_tokens_and_edges():
    q = Quantiser.fit("quantile", [np.arange(100.0)], bins=4)
    assert q.edges.tolist() == [[24.75, 49.5, 74.25]] and q.vocab.tolist() == [4]
    assert q.transform(np.array([[-5.0], [24.75], [50.0], [1e9]])).ravel().tolist() == [0, 1, 2, 3]
    assert q.transform(np.zeros((3, 1))).dtype == np.uint8
    assert Quantiser.fit("quantile", [np.arange(1000.0)], bins=300).transform(np.full((1, 1), 999.0)).dtype == np.int64
    const = Quantiser.fit("quantile", [np.ones(10)], bins=4)
    assert const.transform(np.ones((2, 1))).ravel().tolist() == [3, 3]  # a constant channel: one token


def test_subsample_is_deterministic_and_bounded(isolated, monkeypatch):
    s = Sampler(total=10_000, channels=2, limit=1000)
    rng = np.random.default_rng(0)
    data = rng.normal(size=(10_000, 2))
    for i in range(0, 10_000, 700):
        s.add(data[i:i + 700])
    v = s.values()
    assert len(v) == 2 and 800 < v[0].size < 1200
    s2 = Sampler(total=10_000, channels=2, limit=1000)
    for i in range(0, 10_000, 700):
        s2.add(data[i:i + 700])
    assert all(np.array_equal(p, q) for p, q in zip(v, s2.values()))
    # through the dataset: a small limit gives the same edges in both splits, and in a second process-like load
    monkeypatch.setattr(arrays_mod, "MAX_FIT_VALUES", 200)
    monkeypatch.setattr(array_files, "CHUNK_BYTES", 7 * T * 4)
    path = write(isolated / "d", make_arrays())
    tr, te = load_dataset("arrays", "train", path=path), load_dataset("arrays", "test", path=path)
    full = quantile_edges(make_arrays()["x_train"].astype(np.float64).ravel(), 256)
    assert np.array_equal(tr.quantiser.edges, te.quantiser.edges) and not np.array_equal(tr.quantiser.edges[0], full)


# ------------------------------------------------------------------------------------------- integers
def test_integer_inputs_as_tokens_or_quantised(isolated):
    a = make_arrays(2, np.int64)
    a["x_train"][0, 0, 1] = 999  # channel 1 vocabulary 1000: int64 tokens
    path = write(isolated / "d", a)
    ds = load_dataset("arrays", "train", path=path)
    assert ds.kind == "tokens" and ds.vocab.tolist() == [10, 1000] and ds.info.channels == (10, 1000)
    assert ds[0][0].dtype == torch.int64 and int(ds[0][0][0, 1]) == 999
    assert ds.data_state().keys() == {"vocab"}
    q = load_dataset("arrays", "train", path=path, max_vocab=0, bins=16)  # 0: quantise every input
    assert q.kind == "quantile" and q.info.channels == (16, 16) and q[0][0].dtype == torch.uint8
    assert load_dataset("arrays", "train", path=path, max_vocab=999).kind == "quantile"  # 999 is not < 999
    a["x_train"][1, 1, 0] = -1  # negative integers are quantised
    assert load_dataset("arrays", "train", path=write(isolated / "e", a)).kind == "quantile"


# ------------------------------------------------------------------------------------------- data_state
def test_data_state_same_for_both_splits_and_follows_the_training_file(isolated):
    a = make_arrays(lengths=True)
    path = write(isolated / "d", a)
    tr, te = load_dataset("arrays", "train", path=path), load_dataset("arrays", "test", path=path)
    s_tr, s_te = tr.data_state(), te.data_state()
    assert set(s_tr) == {"quantiser_edges", "vocab"}
    assert s_tr["quantiser_edges"].dtype == torch.float64 and s_tr["quantiser_edges"].shape == (1, 255)
    assert s_tr["vocab"].dtype == torch.int64 and s_tr["vocab"].tolist() == [256]
    assert all(torch.equal(s_tr[k], s_te[k]) for k in s_tr)
    np.save(path / "x_train.npy", a["x_train"] * 2.0)  # the training file changes
    again = load_dataset("arrays", "test", path=path).data_state()
    assert not torch.equal(again["quantiser_edges"], s_tr["quantiser_edges"])
    assert load_dataset("arrays", "train", path=path, bins=64).data_state()["vocab"].tolist() == [64]


def test_data_state_of_the_permuted_sources(tmp_path, monkeypatch):
    from auxrnn.data import MNIST

    src = tmp_path / "src"
    monkeypatch.setattr(MNIST, "resources", write_mnist_folder(src, small_mnist(), gz=True))
    assert "data_state" not in vars(type(load_dataset("copy", "train", length=10, size=2)))  # the default: {}
    pm = load_dataset("pmnist", "test", root=tmp_path / "root", local_dir=src, search_local=False, mirrors=[], npm=False)
    ix = load_dataset("idx", "train", folder=src, perm_seed=0)
    assert torch.equal(pm.data_state()["permutation"], pm.permutation) and pm.data_state()["permutation"].dtype == torch.int64
    assert torch.equal(ix.data_state()["permutation"], pm.permutation)
    assert load_dataset("idx", "train", folder=src).data_state() == {}
    assert load_dataset("copy", "train", length=10, size=2).data_state() == {}


# ------------------------------------------------------------------------------------------- memory-mapped reads
class _Recorder:
    """Wraps an array and records the number of elements each indexing returns."""

    def __init__(self, a):
        self.a, self.sizes = a, []
        self.shape, self.ndim, self.dtype = a.shape, a.ndim, a.dtype

    def __getitem__(self, key):
        out = self.a[key]
        self.sizes.append(int(np.asarray(out).size))
        return out


def test_npy_is_memory_mapped_and_an_item_reads_only_its_row(isolated, monkeypatch):
    a = make_arrays(3, np.float32, lengths=True)
    path = write(isolated / "d", a)
    calls = []
    real_load = np.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(array_files.np, "load", spy)
    ds = load_dataset("arrays", "test", path=path)
    assert calls and all(c.get("mmap_mode") == "r" and c.get("allow_pickle") is False for c in calls)
    assert isinstance(ds._x, np.memmap) and Path(ds._x.filename) == path / "x_test.npy"
    rec = _Recorder(ds._x)
    ds._x = rec
    x, _ = ds[5]
    n = int(a["lengths_test"][5])
    assert rec.sizes == [n * 3] and x.shape == (n, 3)  # one row, real positions only
    # checking and fitting stream the file in chunks of CHUNK_BYTES, never the whole array at once
    monkeypatch.setattr(array_files, "CHUNK_BYTES", 4 * T * 3 * 4)
    part = array_files.Part("train", array_files.Field("x_train", path, _Recorder(real_load(path / "x_train.npy",
                            mmap_mode="r")), None), None, a["y_train"], None, None)
    list(part.blocks())
    assert max(part.x.array.sizes) == 4 * T * 3 and sum(part.x.array.sizes) == N_TRAIN * T * 3


def test_pickling_reopens_the_memory_map(isolated):
    path = write(isolated / "d", make_arrays())
    ds = load_dataset("arrays", "train", path=path)
    blob = pickle.dumps(ds)
    assert len(blob) < make_arrays()["x_train"].nbytes  # the data itself is not pickled
    back = pickle.loads(blob)
    assert isinstance(back._x, np.memmap) and torch.equal(back[3][0], ds[3][0]) and back[3][1] == ds[3][1]
    npz = load_dataset("arrays", "train", path=write(isolated / "d.npz", make_arrays(), "npz"))
    assert not isinstance(npz._x, np.memmap) and torch.equal(pickle.loads(pickle.dumps(npz))[3][0], npz[3][0])


# ------------------------------------------------------------------------------------------- CLI
def test_cli_info_and_verify(isolated, capsys):
    path = write(isolated / "d", make_arrays(2, np.float32, lengths=True))
    assert main(["data", "info", "arrays", "--path", str(path), "--bins", "32"]) == 0
    out = capsys.readouterr().out
    assert "classes:   4" in out and "channels:  (32, 32)" in out
    assert "train:     40 items" in out and "test:      16 items" in out
    assert "classes 0: 10, 1: 10, 2: 10, 3: 10" in out and "classes 0: 4, 1: 4, 2: 4, 3: 4" in out
    assert re.search(r"lengths min \d+, mean [\d.]+, max \d+ \(of T = 30\)", out)
    assert "inputs:    2 channels of float32, T = 30" in out
    assert "quantiser: quantile, 32 bins per channel, fitted on the train split only" in out
    assert re.search(r"channel 1: edges min -?[\d.]+, median -?[\d.e-]+, max [\d.]+", out)
    assert main(["data", "verify", "arrays", "--path", str(path)]) == 0
    out = capsys.readouterr().out
    assert "ok  arrays train: 40 items" in out and "ok  arrays test: 16 items" in out
    assert "ok  arrays: data state (vocab (2,), quantiser_edges (2, 255)) identical in both splits" in out

    one = write(isolated / "one.npz", as_single(make_arrays(None, np.uint8)), "npz")
    assert main(["data", "info", "arrays", "--path", str(one), "--test-size", "0.25", "--split-seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "train:     42 items" in out and "test:      14 items" in out
    assert "layout:    single (test_size=0.25, split_seed=3)" in out
    assert "tokens:    integers used as tokens (max_vocab=4096); vocabulary per channel = largest training value + 1: 10" in out

    a = make_arrays()
    a["x_train"][2, 3] = np.nan
    bad = write(isolated / "bad", a)
    assert main(["data", "verify", "arrays", "--path", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "auxrnn data: error:" in err and "x_train: holds NaN at row 2, step 3, channel 0" in err
    assert main(["data", "info", "mnist", "--path", str(bad)]) == 2
    assert "does not take --path" in capsys.readouterr().err
