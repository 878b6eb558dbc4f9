"""The baselines (Transformer, SA-LSTM, LM-LSTM) as models of the training pipeline: arch.* end to end."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from auxrnn import reproduce
from auxrnn.cli import main
from auxrnn.models import SequencePretrainedLSTM, TransformerClassifier, build
from auxrnn.data import DatasetInfo
from auxrnn.train.config import build_config, fit_to_data, parse_overrides
from conftest import ckpt_of, tiny_args, write_mnist_idx

TINY = tiny_args(32, 7)
TF = ["arch.name=transformer", "arch.d_model=16", "arch.n_layers=2"]  # too small to match: size given


def cfg_with(*items: str):
    return build_config(None, parse_overrides(list(items)))


@pytest.mark.determinism
def test_transformer_trains_resumes_bit_for_bit_and_evals(tmp_path, capsys, caplog):
    # With dropout, so the random stream it draws from must resume exactly too.
    args = [*TINY, *TF, "arch.readout=cls", "optim.schedule=cosine", "train.steps=6", "model.dropout=0.2",
            "train.checkpoint_every=2"]
    straight, sliced = tmp_path / "straight", tmp_path / "sliced"
    assert main(["train", *args, f"train.out={straight}"]) == 0
    assert "Transformer (d_model=16, layers=2" in caplog.text and "r-LSTM (lstm-16" in caplog.text  # both counts
    assert main(["train", *args, f"train.out={sliced}", "--until-step", "3"]) == 0
    assert main(["train", "--resume", str(sliced)]) == 0
    a, b = ckpt_of(straight), ckpt_of(sliced)
    assert a["step"] == b["step"] == 6 and a["config"]["arch"]["name"] == "transformer"
    assert any(k.startswith("layers.1.attn") for k in a["model"]) and "cls" in a["model"]
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    sa, sb = (json.loads((r / "summary.json").read_text()) for r in (straight, sliced))
    assert sa["status"] == sb["status"] == "finished" and sa["arch"] == "transformer"
    assert sa["param_sha256"] == sb["param_sha256"] and sa["test_accuracy"] == sb["test_accuracy"]
    capsys.readouterr()
    assert main(["eval", str(sliced)]) == 0
    result = json.loads((sliced / "eval.json").read_text())
    assert result["arch"] == "transformer" and result["accuracy"] == sb["test_accuracy"] and result["count"] == 32


def test_resume_refuses_to_change_the_arch(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *TINY, *TF, "train.steps=1", f"train.out={run}"]) == 0
    assert main(["train", "--resume", str(run), "arch.readout=cls"]) == 2
    assert "arch.readout cannot change when resuming" in capsys.readouterr().err


@pytest.mark.parametrize("arch, head", [("sa-lstm", "pretrainer."), ("lm-lstm", "pretrainer.weight")])
def test_sequence_pretrained_lstms_train_both_phases(arch, head, tmp_path, caplog):
    run = tmp_path / "run"
    assert main(["train", *TINY, f"arch.name={arch}", "train.pretrain_steps=2", "train.steps=2",
                 f"train.out={run}"]) == 0
    assert f"model {arch}:" in caplog.text
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    assert [r["phase"] for r in train] == ["pretrain", "pretrain", "train", "train"]
    assert "aux_loss" in train[0] and "sup_loss" not in train[0]   # the pretraining loss alone
    assert "sup_loss" in train[-1] and "train_acc" in train[-1]
    ck = ckpt_of(run)
    assert any(k.startswith(head) for k in ck["model"]) and ck["config"]["arch"]["name"] == arch
    assert json.loads((run / "summary.json").read_text())["status"] == "finished"
    assert main(["eval", str(run)]) == 0


def test_one_function_builds_every_arch():
    shape = DatasetInfo("copy", 8, (9,), 30, False)
    base = ["model.hidden=16", "model.embed_dim=8", "model.aux_hidden=16", "model.ffn_hidden=16",
            "model.subseq_len=10"]
    cfg = fit_to_data(cfg_with(*base, *TF, "train.steps=1"), shape)
    assert isinstance(build(cfg.model, cfg.arch), TransformerClassifier)
    for arch, kind in (("sa-lstm", "sa"), ("lm-lstm", "lm")):
        cfg = fit_to_data(cfg_with(*base, f"arch.name={arch}", "train.pretrain_steps=1", "train.steps=1"), shape)
        model = build(cfg.model, cfg.arch)
        assert isinstance(model, SequencePretrainedLSTM) and model.cfg.kind == kind
    cfg = fit_to_data(cfg_with("train.steps=1"), DatasetInfo("mnist", 10, (256,), 784, False))
    model = build(cfg.model, cfg.arch)
    assert type(model).__name__ == "AuxRNN"
    matched = fit_to_data(cfg_with("arch.name=transformer", "train.steps=1"), DatasetInfo("mnist", 10, (256,), 784, False))
    tf = build(matched.model, matched.arch)
    assert (tf.cfg.d_model, tf.cfg.n_layers) == (128, 7)  # matched to the default r-LSTM (docs/baselines.md)


@pytest.mark.parametrize("items, message", [
    (["arch.name=transformer", "train.pretrain_steps=5", "train.steps=1"],
     r"train\.pretrain_steps=5 is invalid with arch\.name='transformer': the Transformer has no auxiliary loss"),
    (["arch.name=transformer", "train.pretrain_epochs=2", "train.steps=1"], r"train\.pretrain_epochs=2 is invalid"),
    (["arch.name=sa-lstm", "train.steps=1"], r"arch\.name='sa-lstm' needs a pretraining phase.*plain LSTM"),
    (["arch.name=lm-lstm", "train.epochs=1"], r"arch\.name='lm-lstm' needs a pretraining phase.*plain LSTM"),
    (["arch.name=gru", "train.steps=1"], r"arch\.name='gru' is invalid: choose one of rnn, transformer, sa-lstm, lm-lstm"),
    (["arch.positions=rotary", "train.steps=1"], r"arch\.positions='rotary' is invalid"),
    (["arch.readout=max", "train.steps=1"], r"arch\.readout='max' is invalid"),
    (["arch.name=transformer", "arch.d_model=30", "train.steps=1"], r"arch\.d_model=30 is invalid: must be a multiple"),
    (["model.aux=none", "train.pretrain_steps=3", "train.steps=1"], r"needs an auxiliary loss, but model\.aux='none'"),
])
def test_refused_arch_combinations(items, message):
    with pytest.raises(ValueError, match=message):
        cfg_with(*items)


def test_sequence_pretrained_lstms_pretrain_without_an_aux_head():
    cfg = cfg_with("arch.name=lm-lstm", "model.aux=none", "train.pretrain_steps=3", "train.steps=1")
    assert cfg.arch.name == "lm-lstm"  # the rnn-only "pretraining needs model.aux" rule does not apply


def test_learned_positions_must_cover_the_sequence(tmp_path, capsys):
    shape = DatasetInfo("copy", 8, (9,), 30, False)
    cfg = fit_to_data(cfg_with(*TF, "arch.positions=learned", "train.steps=1"), shape)
    assert cfg.arch.max_len == 30  # 0 = the data's length, then saved with the run
    with pytest.raises(ValueError, match=r"arch\.max_len=20 is shorter than the sequences of 'copy' \(length 30\)"):
        fit_to_data(cfg_with(*TF, "arch.positions=learned", "arch.max_len=20", "train.steps=1"), shape)
    rc = main(["train", *TINY, *TF, "arch.positions=learned", "arch.max_len=20", "train.steps=1",
               f"train.out={tmp_path / 'run'}"])
    assert rc == 2 and "arch.max_len=20 is shorter" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before any work


def test_unmatchable_transformer_says_how_to_size_it(capsys, tmp_path):
    rc = main(["train", *TINY, "arch.name=transformer", "train.steps=1", f"train.out={tmp_path / 'run'}"])
    assert rc == 2
    assert "set both arch.d_model and arch.n_layers" in capsys.readouterr().err


def test_transformer_preset_trains_end_to_end_and_its_checkpoint_holds_no_data(tmp_path):
    """The matched Table 2 Transformer (1.52M parameters) on an IDX folder: one step, and a checkpoint no
    bigger than the parameters with two optimizer moments."""
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        write_mnist_idx(tmp_path, prefix, rng.integers(0, 256, (4, 28, 28), dtype=np.uint8), np.arange(4, dtype=np.uint8))
    run = tmp_path / "run"
    assert main(["train", "--preset", "mnist_transformer", "data.name=idx", f"data.options.folder={tmp_path}",
                 "data.batch_size=2", "data.eval_batch_size=4", "train.epochs=0", "train.steps=1",
                 "train.tensorboard=false", f"train.out={run}"]) == 0
    ck = ckpt_of(run)
    n = sum(t.numel() for t in ck["model"].values())
    assert ck["config"]["arch"]["name"] == "transformer" and n > 1_500_000
    assert (run / "checkpoints" / "last.pt").stat().st_size < 3 * 4 * n + 2**20


def test_new_presets_are_reproduce_cells():
    presets = {c.preset for name in ("table2-mnist", "table2-pmnist", "table2-cifar10", "figure3", "dbpedia")
               for c in reproduce.get(name).cells}
    assert {"mnist_transformer", "pmnist_transformer", "cifar10_transformer", "dogs_transformer",
            "dbpedia_sa_lstm", "dbpedia_lm_lstm"} <= presets
    assert build_config("dbpedia_sa_lstm").arch.name == "sa-lstm"
    assert build_config("dogs_transformer").train.pretrain_epochs == 0
