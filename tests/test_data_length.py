"""Longer sequences from the same data (issue: Fig. 3 and the delay test): `side` resizes images, `delay`
appends blank or noise steps after every sequence, for every token dataset."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from auxrnn.data import MNIST, load_dataset, make_permutation, static_info
from auxrnn.data.preparation import InputPreparation
from auxrnn.data.resize import resize_images
from fixtures_formats import small_mnist, write_mnist_folder


@pytest.fixture
def fake_mnist(tmp_path, monkeypatch):
    """A 12/5-image MNIST folder with its checksums installed as MNIST's resources; returns the load kwargs."""
    arrays = small_mnist()
    src = tmp_path / "src"
    monkeypatch.setattr(MNIST, "resources", write_mnist_folder(src, arrays, gz=True))
    kw = dict(root=tmp_path / "root", local_dir=src, search_local=False, mirrors=[], npm=False)
    return SimpleNamespace(kw=kw, src=src, root=tmp_path / "root", arrays=arrays)


def test_side_resizes_bilinear_like_pil_and_caches_memory_mapped(fake_mnist):
    ds = load_dataset("mnist", "train", side=40, **fake_mnist.kw)
    assert ds.info.seq_len == 1600 and len(ds) == 12 and static_info("mnist", {"side": 40}).seq_len == 1600
    x, y = ds[3]
    assert x.shape == (1600,) and x.dtype == torch.uint8 and y == 3
    assert isinstance(ds._x, np.memmap)  # read from the cache, never held whole
    caches = sorted(p.name for p in (fake_mnist.root / "MNIST" / "processed").glob("*.npy"))
    assert len(caches) == 1 and caches[0].startswith("train_side40_")
    image = fake_mnist.arrays["train-images-idx3-ubyte"][3]
    assert torch.equal(x, torch.from_numpy(resize_images(image[None], 40).reshape(-1)))
    pil = pytest.importorskip("PIL.Image")
    ref = np.asarray(pil.fromarray(image).resize((40, 40), pil.Resampling.BILINEAR), dtype=np.int64)
    assert np.abs(x.numpy().reshape(40, 40).astype(np.int64) - ref).max() <= 1  # PIL rounds in fixed point
    mtime = (fake_mnist.root / "MNIST" / "processed" / caches[0]).stat().st_mtime_ns
    again = load_dataset("mnist", "train", side=40, **fake_mnist.kw)
    assert torch.equal(again[3][0], x)
    assert (fake_mnist.root / "MNIST" / "processed" / caches[0]).stat().st_mtime_ns == mtime  # not rebuilt


def test_side_28_is_the_plain_dataset_and_bad_sides_are_refused(fake_mnist):
    plain = load_dataset("mnist", "test", **fake_mnist.kw)
    same = load_dataset("mnist", "test", side=28, **fake_mnist.kw)
    assert all(torch.equal(plain[i][0], same[i][0]) for i in range(len(plain)))
    for bad in (0, -3, "big", 2.5):
        with pytest.raises(ValueError, match="side"):
            load_dataset("mnist", "test", side=bad, **fake_mnist.kw)


def test_pmnist_permutes_the_resized_pixels(fake_mnist):
    plain = load_dataset("mnist", "test", side=20, **fake_mnist.kw)
    pm = load_dataset("pmnist", "test", side=20, perm_seed=3, **fake_mnist.kw)
    perm = make_permutation(400, 3)
    assert torch.equal(pm.permutation, perm) and pm.info.seq_len == 400
    assert all(torch.equal(pm[i][0], plain[i][0][perm]) for i in range(len(pm)))


def test_idx_side_caches_under_the_data_root(fake_mnist, tmp_path):
    ix = load_dataset("idx", "train", root=tmp_path / "r", folder=fake_mnist.src, side=40)
    mn = load_dataset("mnist", "train", side=40, **fake_mnist.kw)
    assert ix.info.seq_len == 1600 and torch.equal(ix[5][0], mn[5][0])
    assert list((tmp_path / "r" / "IDXFolder" / "processed").glob("train_side40_*.npy"))


@pytest.mark.parametrize("fill", ["blank", "noise"])
def test_delay_appends_after_the_last_real_step(fake_mnist, fill):
    plain = load_dataset("mnist", "train", **fake_mnist.kw)
    ds = load_dataset("mnist", "train", delay=316, delay_fill=fill, **fake_mnist.kw)
    assert ds.info.seq_len == 1100 and static_info("mnist", {"delay": 316}).seq_len == 1100
    x, y = ds[2]
    assert x.shape == (1100,) and x.dtype == torch.uint8 and y == plain[2][1]
    assert torch.equal(x[:784], plain[2][0])
    window = x[800:]  # the Truncate300 window of T = 1100 holds no real step
    if fill == "blank":
        assert not window.any()
    else:
        assert torch.equal(ds[2][0], x)  # the same noise every time the example is read
        other = load_dataset("mnist", "train", delay=316, delay_fill=fill, **fake_mnist.kw)
        assert torch.equal(other[2][0], x)  # ... and in another process
        assert not torch.equal(ds[3][0][784:], x[784:])  # each example its own noise
        test = load_dataset("mnist", "test", delay=316, delay_fill=fill, **fake_mnist.kw)
        assert not torch.equal(test[2][0][784:], x[784:])  # each split its own stream
        seeded = load_dataset("mnist", "train", delay=316, delay_fill=fill, delay_seed=1, **fake_mnist.kw)
        assert not torch.equal(seeded[2][0][784:], x[784:])
        assert int(x[784:].max()) > 200 and x[784:].float().std() > 50  # uniform over 0..255


def test_delay_works_on_any_token_dataset_and_refuses_real_values(tmp_path):
    copy = load_dataset("copy", "train", length=20, size=6, delay=5, delay_fill="noise")
    x, _ = copy[0]
    assert x.shape == (25,) and copy.info.seq_len == 25 and int(x[20:].max()) < copy.info.channels[0]
    add = load_dataset("adding", "train", length=20, size=6, delay=4, delay_fill="noise")
    x, _ = add[1]
    assert x.shape == (24, 2) and (x[20:, 0] < 10).all() and (x[20:, 1] < 2).all()
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x_train.npy", rng.normal(size=(8, 12)).astype(np.float32))
    np.save(tmp_path / "y_train.npy", np.arange(8) % 2)
    np.save(tmp_path / "x_test.npy", rng.normal(size=(4, 12)).astype(np.float32))
    np.save(tmp_path / "y_test.npy", np.arange(4) % 2)
    with pytest.raises(ValueError, match="token data"):
        load_dataset("arrays", "train", path=tmp_path, quantiser="none", delay=3)
    tokens = load_dataset("arrays", "train", path=tmp_path, delay=3)
    assert tokens[0][0].shape[0] == 15


def test_delay_refuses_bad_values(fake_mnist):
    for bad, match in [({"delay": -1}, "delay"), ({"delay": "x"}, "delay"), ({"delay_fill": "zeros"}, "delay_fill"),
                       ({"delay_seed": -2}, "delay_seed")]:
        with pytest.raises(ValueError, match=match):
            load_dataset("mnist", "test", **bad, **fake_mnist.kw)


def test_keep_last_with_side_and_delay(fake_mnist):
    from auxrnn.train.batches import load_splits

    def cfg(**options):
        return SimpleNamespace(name="mnist", root=str(fake_mnist.root), val_size=0, val_seed=0, keep_last=300,
                               options={k: (str(v) if k in ("local_dir", "root") else v)
                                        for k, v in {**fake_mnist.kw, **options}.items() if k != "root"})

    blank = load_splits(cfg(delay=316))
    assert blank.train.info.seq_len == 300 and all(not blank.train[i][0].any() for i in range(len(blank.train)))
    noise = load_splits(cfg(delay=316, delay_fill="noise"))
    full = load_dataset("mnist", "train", delay=316, delay_fill="noise", **fake_mnist.kw)
    assert torch.equal(noise.train[4][0], full[4][0][-300:])
    resized = load_splits(cfg(side=40))
    assert resized.train.info.seq_len == 300
    assert torch.equal(resized.test[1][0], load_dataset("mnist", "test", side=40, **fake_mnist.kw)[1][0][-300:])


def test_prediction_resizes_and_delays_like_the_run(fake_mnist):
    """Raw 28 x 28 images through a run's saved preparation read exactly as the dataset's items."""
    images = fake_mnist.arrays["t10k-images-idx3-ubyte"]
    ds = load_dataset("pmnist", "test", side=40, perm_seed=0, delay=30, **fake_mnist.kw)
    prep = InputPreparation.of("pmnist", {"side": 40, "perm_seed": 0, "delay": 30}, ds.data_state(), (256,))
    x, lengths = prep(images)
    assert x.shape == (5, 1630, 1) and (lengths == 1630).all()
    assert all(torch.equal(torch.from_numpy(x[i, :, 0]), ds[i][0].long()) for i in range(len(ds)))
    noisy = InputPreparation.of("mnist", {"delay": 30, "delay_fill": "noise"}, {}, (256,))
    a, _ = noisy(images)
    b, _ = noisy(images)
    assert np.array_equal(a, b) and a[:, 784:].any()
