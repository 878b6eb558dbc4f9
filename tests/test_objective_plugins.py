"""Objectives users write: a target hook that sees the element before, and another package's objective found
through the entry-point group auxrnn.objectives by `auxrnn train`, `eval`, `predict` and `auxrnn.load`."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from auxrnn import AuxModel, PredictValues, ReconstructValues
from auxrnn.cli import main
from auxrnn.models import ArchConfig, AuxRNN, ModelConfig, build_objective, check, registered

PLUGIN = '''"""A package of its own: the r-LSTM on real values, rebuilding the differences x[t] - x[t-1]."""
from auxrnn import ReconstructValues


class ReconstructDiffs(ReconstructValues):
    name, attr = "reconstruct_diffs", "diff_reconstructor"

    def targets(self, window):
        return window[:, 1:] - window[:, :-1]
'''


def _install_plugin(folder):
    """What `pip install` leaves in site-packages: the module and a dist-info with the entry point."""
    (folder / "auxrnn_diffs").mkdir(parents=True)
    (folder / "auxrnn_diffs" / "__init__.py").write_text(PLUGIN)
    info = folder / "auxrnn_diffs-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: auxrnn-diffs\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[auxrnn.objectives]\nreconstruct_diffs = auxrnn_diffs:ReconstructDiffs\n")
    return folder


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    folder = _install_plugin(tmp_path / "site")
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    sys.modules.pop("auxrnn_diffs", None)


def _real_signals(folder):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for split, n in (("train", 16), ("test", 6)):
        y = rng.integers(0, 2, n)
        np.save(folder / f"x_{split}.npy", (rng.normal(size=(n, 20, 2)) + y[:, None, None]).astype(np.float32))
        np.save(folder / f"y_{split}.npy", y)
    return folder


class Seen:
    """Records the targets each score call receives (listed before the objective it watches)."""

    def score(self, out, targets, mask):
        self.seen.append((targets.detach().clone(), mask.clone()))
        return super().score(out, targets, mask)


class DiffReconstruct(Seen, ReconstructValues):
    name, attr = "diff_reconstruct", "diff_reconstructor"

    def targets(self, window):
        return window[:, 1:] - window[:, :-1]


class DiffPredict(Seen, PredictValues):
    name, attr = "diff_predict", "diff_predictor"

    def targets(self, window):
        return window[:, 1:] - window[:, :-1]


def test_a_target_may_depend_on_the_element_before_it_without_touching_decode():
    T, L = 12, 4
    x = (torch.arange(T, dtype=torch.float32) ** 2).repeat(2, 1).unsqueeze(-1)  # x[t] = t^2: x[t] - x[t-1] = 2t - 1
    rec = DiffReconstruct(subseq_len=L, aux_truncate=3, channels=1)
    pred = DiffPredict(subseq_len=L, aux_truncate=2, channels=1)
    rec.seen, pred.seen = [], []
    model = AuxModel(nn.Linear(1, 4), nn.LSTM(4, 8, batch_first=True), nn.Linear(8, 2), [rec, pred], truncate=3)
    anchors = {"diff_reconstruct": torch.tensor([[6], [L]]), "diff_predict": torch.tensor([[0], [5]])}
    model(x, torch.full((2,), T), torch.tensor([0, 1]), anchors=anchors).loss.backward()

    targets, mask = rec.seen[0]  # step j rebuilds x[a-L+j+1] - x[a-L+j]
    assert mask.all()
    for row, a in enumerate((6, L)):
        assert targets[row, :, 0].tolist() == [2 * (a - L + j + 1) - 1 for j in range(L - 1)]
    got = torch.cat([t for t, _ in pred.seen], dim=1)[..., 0]  # segments of 2 steps: step j predicts x[a+1+j] - x[a+j]
    assert torch.cat([m for _, m in pred.seen], dim=1).all()
    for row, a in enumerate((0, 5)):
        assert got[row].tolist() == [2 * (a + 1 + j) - 1 for j in range(L)]


def test_model_aux_names_an_installed_packages_objective_built_from_model_config(plugin):
    assert registered()[:4] == ("reconstruct", "predict", "reconstruct_values", "predict_values")
    assert "reconstruct_diffs" in registered()
    cfg = ModelConfig(channels=(0, 0), n_classes=2, encoder="linear", aux="reconstruct_diffs+predict", hidden=8,
                      aux_hidden=6, aux_layers=1, subseq_len=5, aux_truncate=4, teacher_forcing=False)
    obj = build_objective("reconstruct_diffs", cfg)
    assert type(obj).__module__ == "auxrnn_diffs" and obj.channels == 2  # real-valued: C values per step
    assert (obj.hidden, obj.layers, obj.subseq_len, obj.aux_truncate, obj.teacher_forcing) == (6, 1, 5, 4, False)
    model = AuxRNN(ModelConfig(**{**cfg.to_dict(), "aux": "reconstruct_diffs"}))
    assert model.keys == ["reconstruct_diffs"] and hasattr(model, "diff_reconstructor")
    check(ModelConfig(**{**cfg.to_dict(), "aux": "reconstruct_diffs"}), ArchConfig(), "arrays")


def test_a_misspelled_objective_is_an_unknown_objective_even_on_real_valued_data(tmp_path, capsys):
    cfg = ModelConfig(channels=(0, 0), n_classes=2, encoder="linear", aux="reconstruct_value")
    with pytest.raises(ValueError, match=r"model\.aux='reconstruct_value' is invalid: unknown objective\(s\) "
                                         r"\['reconstruct_value'\].*reconstruct_values.*auxrnn\.objectives"):
        check(cfg, ArchConfig(), "arrays")
    data = _real_signals(tmp_path / "data")
    assert main(["train", "--preset", "none", "data.name=arrays", f"data.options.path={data}",
                 "data.options.quantiser=none", "data.batch_size=4", "model.encoder=linear",
                 "model.aux=reconstruct_value", "train.steps=1", f"train.out={tmp_path / 'run'}", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown objective(s) ['reconstruct_value']" in err[0] and "real-valued" not in err[0]


@pytest.mark.slow
def test_an_installed_objective_trains_from_the_cli_and_its_run_loads_and_predicts_with_or_without_it(
        tmp_path, monkeypatch, caplog):
    site, data, run = _install_plugin(tmp_path / "site"), _real_signals(tmp_path / "data"), tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    train = subprocess.run(
        [sys.executable, "-m", "auxrnn", "train", "--preset", "none", "data.name=arrays", f"data.options.path={data}",
         "data.options.quantiser=none", "data.batch_size=4", "model.encoder=linear", "model.aux=reconstruct_diffs",
         "model.hidden=8", "model.embed_dim=4", "model.aux_hidden=8", "model.ffn_hidden=8", "model.subseq_len=3",
         "model.truncate=4", "model.aux_truncate=3", "train.pretrain_steps=1", "train.steps=2",
         "train.tensorboard=false", f"train.out={run}", "--no-progress"],
        env=env, capture_output=True, text=True, timeout=600)
    assert train.returncode == 0, train.stderr
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert any(k.startswith("diff_reconstructor.") for k in ckpt["model"])
    x = np.load(data / "x_test.npy")

    import auxrnn  # this process does not have the plugin: the classifier loads without the auxiliary head
    bare = auxrnn.load(run)
    assert "left out the auxiliary head of reconstruct_diffs" in caplog.text
    assert not bare.module.objectives
    assert main(["predict", str(run), "--data", str(data / "x_test.npy"), "--out", str(tmp_path / "p.npy")]) == 0
    assert main(["eval", str(run)]) == 0

    monkeypatch.syspath_prepend(str(site))
    try:
        full = auxrnn.load(run)
        assert type(full.module.objectives[0]).__name__ == "ReconstructDiffs"
        np.testing.assert_array_equal(full.predict(x).probs, bare.predict(x).probs)
        np.testing.assert_array_equal(np.load(tmp_path / "p.npy")["probs"], bare.predict(x).probs)
    finally:
        sys.modules.pop("auxrnn_diffs", None)
