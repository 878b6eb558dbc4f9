"""Real values kept real (`arrays` with quantiser=none): a per-channel standardiser fitted on the training items
only (after the validation carve-out), saved with the run, applied the same way at eval and predict."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from auxrnn.cli import main
from auxrnn.data import collate_sequences, load_dataset
from auxrnn.data.preparation import InputPreparation
from auxrnn.data.standardize import Moments, Standardiser
from auxrnn.train import batches
from auxrnn.train.config import build_config


def _write(folder, train, test, **extra):
    folder.mkdir(parents=True, exist_ok=True)
    for name, a in {"x_train": train, "x_test": test, **extra}.items():
        np.save(folder / f"{name}.npy", a)
    np.save(folder / "y_train.npy", np.arange(len(train)) % 2)
    np.save(folder / "y_test.npy", np.arange(len(test)) % 2)


def _stats(x):
    v = x.reshape(-1, x.shape[-1]).astype(np.float64)
    std = v.std(0)
    return v.mean(0), np.where(std > 0, std, 1.0)


@pytest.fixture
def signals(tmp_path):
    rng = np.random.default_rng(0)
    train = (rng.normal(size=(20, 30, 3)) * [1.0, 5.0, 0.1] + [0.0, 100.0, -3.0]).astype(np.float32)
    test = (rng.normal(size=(6, 30, 3)) * 50 + 1000).astype(np.float32)  # far away: must not move the statistics
    _write(tmp_path / "d", train, test)
    return tmp_path / "d", train, test


def test_moments_of_streamed_chunks_equal_the_whole_array():
    v = np.random.default_rng(1).normal(size=(1000, 2)) * [3.0, 0.01] + [1e6, -2.0]  # a large offset
    m = Moments(2)
    for s in (0, 7, 300, 301, 999):
        m.add(v[s:{0: 7, 7: 300, 300: 301, 301: 999, 999: 1000}[s]])
    st = m.standardiser()
    assert np.allclose(st.mean, v.mean(0), rtol=0, atol=1e-6) and np.allclose(st.std, v.std(0), rtol=1e-9)
    const = Moments(1)
    const.add(np.full((5, 1), 4.0))
    assert const.standardiser().std.tolist() == [1.0]  # a constant channel is divided by 1, not 0
    with pytest.raises(ValueError, match="at least one training value"):
        Moments(1).standardiser()


def test_items_are_float32_standardised_with_training_statistics_only(signals):
    folder, train, test = signals
    tr = load_dataset("arrays", "train", path=folder, quantiser="none")
    te = load_dataset("arrays", "test", path=folder, quantiser="none")
    mean, std = _stats(train)
    for ds in (tr, te):
        assert ds.kind == "standardise" and ds.info.channels == (0, 0, 0)
        assert np.allclose(ds.standardiser.mean, mean) and np.allclose(ds.standardiser.std, std)
    x, _ = te[2]
    assert x.dtype == torch.float32 and x.shape == (30, 3)
    assert np.allclose(x.numpy(), (test[2] - mean) / std, atol=1e-5)
    assert abs(float(torch.stack([tr[i][0] for i in range(len(tr))]).mean())) < 1e-5
    state = tr.data_state()
    assert set(state) == {"vocab", "standardise_mean", "standardise_std"}
    assert all(torch.equal(state[k], te.data_state()[k]) for k in state)


def test_padding_is_never_fitted_and_collates_as_float(tmp_path):
    train = np.ones((4, 10, 1), np.float32)
    train[:, 5:] = np.nan  # padding may hold anything
    train[1, :5] = 3.0
    _write(tmp_path / "d", train, train[:2].copy(), lengths_train=np.full(4, 5), lengths_test=np.full(2, 5))
    ds = load_dataset("arrays", "train", path=tmp_path / "d", quantiser="none")
    assert np.allclose(ds.standardiser.mean, [1.5]) and np.allclose(ds.standardiser.std, [np.sqrt(0.75)])
    x, lengths, _ = collate_sequences([ds[0], (torch.zeros(3, 1), 0)])
    assert x.dtype == torch.float32 and lengths.tolist() == [5, 3] and torch.all(x[1, 3:] == 0)
    with pytest.raises(ValueError, match="items mix real values and integer tokens"):
        collate_sequences([ds[0], (torch.zeros(3, 1, dtype=torch.int64), 0)])


def test_validation_items_never_touch_the_statistics_and_eval_refits_the_same(signals):
    folder, train, test = signals
    cfg = build_config("none", {"data.name": "arrays", "data.options.path": str(folder),
                                "data.options.quantiser": "none", "data.val_size": 5, "train.steps": 1})
    splits = batches.load_splits(cfg.data)
    keep, held = batches.carve_validation(cfg.data, 20)
    assert splits.train.indices == keep and splits.val.indices == held and len(held) == 5
    mean, std = _stats(train[keep])
    saved = splits.extra_state
    assert np.allclose(saved["standardise_mean"].numpy(), mean) and np.allclose(saved["standardise_std"].numpy(), std)
    assert not np.allclose(saved["standardise_mean"].numpy(), _stats(train)[0])  # the carve-out made a difference

    changed = train.copy()
    changed[held] = 1e4  # the validation items' values: no effect on what the model is fed
    _write(folder, changed, test * 2)  # nor the test values
    again = batches.load_splits(cfg.data).extra_state
    assert all(torch.equal(saved[k], again[k]) for k in saved)

    # eval (and predict) see the same mapping: a fresh test split refitted like the run, or the saved state alone
    te = load_dataset("arrays", "test", path=folder, quantiser="none")
    assert not torch.equal(te.data_state()["standardise_mean"], saved["standardise_mean"])
    batches.fit_like_run(cfg.data, te)
    assert all(torch.equal(saved[k], te.data_state()[k]) for k in saved)
    prep = InputPreparation.of("arrays", cfg.data.options, saved, channels=(0, 0, 0))
    x, lengths = prep(test * 2)
    assert prep.real and x.dtype == np.float32 and lengths.tolist() == [30] * 6
    assert np.array_equal(x[3], te[3][0].numpy())


def test_non_finite_values_and_mismatched_channels_are_refused(tmp_path):
    rng = np.random.default_rng(2)
    train = rng.normal(size=(6, 8, 2)).astype(np.float32)
    bad = train.copy()
    bad[4, 3, 1] = np.nan
    _write(tmp_path / "nan", bad, train[:2])
    with pytest.raises(ValueError, match=r"x_train.npy: x_train: holds NaN at row 4, step 3, channel 1"):
        load_dataset("arrays", "train", path=tmp_path / "nan", quantiser="none")
    _write(tmp_path / "c", train, rng.normal(size=(2, 8, 3)).astype(np.float32))
    with pytest.raises(ValueError, match="has 3 channels but .* has 2 channels; C must agree"):
        load_dataset("arrays", "test", path=tmp_path / "c", quantiser="none")
    prep = InputPreparation("arrays", "standardise", (0, 0), standardiser=Standardiser.from_state([0, 0], [1, 1]))
    with pytest.raises(ValueError, match="inputs have 3 channels per step, but this model was trained on 2"):
        prep(np.zeros((1, 8, 3)))
    with pytest.raises(ValueError, match="inputs hold inf at item 0, step 2, channel 0"):
        prep(np.where(np.arange(8)[None, :, None] == 2, np.inf, np.zeros((1, 8, 2))))
    with pytest.raises(ValueError, match="unknown quantiser 'None'; valid choices: quantile, uniform, none"):
        load_dataset("arrays", "train", path=tmp_path / "c", quantiser="None")


def test_data_info_describes_the_standardiser(signals, capsys):
    folder, _, _ = signals
    assert main(["data", "info", "arrays", "--path", str(folder), "--quantiser", "none"]) == 0
    out = capsys.readouterr().out
    assert "values:    real, standardised per channel (quantiser=none), fitted on the train split only" in out
    assert "channel 1: mean 100" in out


def test_training_real_values_with_a_token_model_is_a_clear_error(signals, tmp_path, capsys):
    folder, _, _ = signals
    assert main(["train", "--preset", "none", "data.name=arrays", f"data.options.path={folder}",
                 "data.options.quantiser=none", "data.batch_size=4", "train.steps=1",
                 f"train.out={tmp_path / 'run'}", "--no-progress"]) == 2
    assert "gives real-valued inputs (data.options.quantiser=none): read them with model.encoder=linear and " \
           "real-valued objectives" in capsys.readouterr().err


def test_real_values_train_end_to_end_and_predict_from_raw_arrays(signals, tmp_path, capsys):
    """quantiser=none + model.encoder=linear + the real-valued r-LSTM objective, from the CLI to auxrnn predict."""
    import numpy as np

    folder, _, _ = signals
    run = tmp_path / "run"
    args = ["train", "--preset", "none", "data.name=arrays", f"data.options.path={folder}",
            "data.options.quantiser=none", "data.batch_size=4", "model.encoder=linear", "model.aux=reconstruct_values",
            "model.hidden=8", "model.embed_dim=4", "model.aux_hidden=8", "model.ffn_hidden=8", "model.subseq_len=3",
            "model.truncate=4", "model.aux_truncate=3", "train.pretrain_steps=1", "train.steps=2",
            "train.tensorboard=false", f"train.out={run}", "--no-progress"]
    assert main(args) == 0
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert set(ckpt["config"]["model"]["channels"]) == {0} and "standardise_mean" in ckpt["data"]
    x = np.load(folder / "x_test.npy")
    out = tmp_path / "p.npy"
    assert main(["predict", str(run), "--data", str(folder / "x_test.npy"), "--out", str(out)]) == 0
    pred = np.load(out)
    assert len(pred) == len(x) and np.allclose(pred["probs"].sum(axis=1), 1.0, atol=1e-5)


def test_integer_tokens_keep_the_vocabulary_of_every_training_item(tmp_path):
    train = np.tile(np.arange(10), (20, 1)).astype(np.int64)
    train[3, 0] = 40  # the largest token: may land in the validation items, which are fed as tokens too
    _write(tmp_path / "d", train, train[:4].copy())
    cfg = build_config("none", {"data.name": "arrays", "data.options.path": str(tmp_path / "d"), "data.val_size": 5,
                                "data.val_seed": 1, "train.steps": 1})
    assert 3 in batches.carve_validation(cfg.data, 20)[1]
    splits = batches.load_splits(cfg.data)
    assert splits.info.channels == (41,) and splits.extra_state["vocab"].tolist() == [41]


def test_a_quantiser_stays_a_quantiser_when_the_kept_items_would_fit_as_tokens(tmp_path):
    train = np.tile(np.arange(10), (20, 1)).astype(np.int64)
    train[3, 0] = 9000  # beyond max_vocab: the whole training split is quantised
    _write(tmp_path / "d", train, train[:4].copy())
    cfg = build_config("none", {"data.name": "arrays", "data.options.path": str(tmp_path / "d"), "data.val_size": 5,
                                "data.val_seed": 1, "data.options.bins": 4, "train.steps": 1})
    splits = batches.load_splits(cfg.data)  # item 3 is a validation item: the kept items all lie in 0..9
    assert splits.train.dataset.kind == "quantile" and splits.info.channels == (4,)
    assert "quantiser_edges" in splits.extra_state
