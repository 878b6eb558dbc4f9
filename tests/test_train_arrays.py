"""Your own arrays end to end: train and eval with one command each; a changed quantiser is refused."""
from __future__ import annotations

import json

import numpy as np

from auxrnn.cli import main
from conftest import TINY_MODEL


def _write(folder, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 24), ("test", 8)):
        y = rng.integers(0, 3, n)
        x = rng.normal(size=(n, 40, 2)).astype(np.float32) + y[:, None, None]  # the class shifts the signal
        np.save(folder / f"x_{split}.npy", (x * scale) ** 3 if scale != 1.0 else x)
        np.save(folder / f"y_{split}.npy", y)


def test_real_valued_arrays_train_evaluate_and_refuse_a_changed_quantiser(tmp_path, capsys):
    data, run = tmp_path / "data", tmp_path / "run"
    _write(data)
    args = ["train", "--preset", "none", "data.name=arrays", f"data.options.path={data}", "data.options.bins=16",
            "data.batch_size=8", *TINY_MODEL, "model.aux=reconstruct", "train.pretrain_steps=2", "train.steps=4",
            "train.tensorboard=false", f"train.out={run}", "--no-progress"]
    assert main([*args, "--until-step", "3"]) == 0
    ckpt = json.loads((run / "summary.json").read_text())
    assert ckpt["status"] == "until_step"
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["test_count"] == 8
    assert main(["eval", str(run)]) == 0
    assert json.loads((run / "eval.json").read_text())["correct"] == summary["test_correct"]
    _write(data, scale=3.0)  # same files, other values: the edges fitted on them differ
    assert main(["eval", str(run)]) == 2
    assert "the data quantiser_edges of 'arrays'" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "train.steps=6", "--no-progress"]) == 2
    assert "the data quantiser_edges saved in" in capsys.readouterr().err
