"""The run configuration: typed overrides, presets, and the promised refusals (before any work)."""
from __future__ import annotations

import pytest

from auxrnn.cli import main
from auxrnn.models import check
from auxrnn.data import DatasetInfo, static_info
from auxrnn.train.config import build_config, fit_to_data, list_presets, parse_overrides

MNIST = DatasetInfo("mnist", 10, (256,), 784, False)


def cfg_with(*items: str, preset: str | None = None):
    return build_config(preset, parse_overrides(list(items)))


def test_overrides_are_typed_by_their_field():
    cfg = cfg_with("optim.lr=1e-3", "model.truncate=300", "train.precision=bf16", "train.train_eval_size=64", "train.max_minutes=9",
                   "data.options.perm_seed=3", "model.channels=[256,256,256]", "train.steps=2e3")
    assert cfg.optim.lr == 1e-3 and isinstance(cfg.optim.lr, float)
    assert cfg.model.truncate == 300 and isinstance(cfg.model.truncate, int)
    assert cfg.train.precision == "bf16" and cfg.train.train_eval_size == 64
    assert cfg.train.max_minutes == 9.0 and isinstance(cfg.train.max_minutes, float)
    assert cfg.data.options == {"perm_seed": 3}
    assert cfg.model.channels == (256, 256, 256)
    assert cfg.train.steps == 2000
    assert cfg_with("model.truncate=full", "train.steps=1").model.truncate == "full"


def test_wrong_type_names_key_value_and_type():
    with pytest.raises(ValueError, match=r"train\.steps='many' has the wrong type: expected int"):
        cfg_with("train.steps=many")
    with pytest.raises(ValueError, match=r"train\.precision='fp16' is invalid: choose one of fp32, bf16, auto"):
        cfg_with("train.precision=fp16", "train.steps=1")


def test_unknown_key_is_refused_with_a_suggestion():
    with pytest.raises(ValueError, match=r"unknown config key 'model\.hiden'; did you mean 'model\.hidden'\?"):
        cfg_with("model.hiden=64")
    with pytest.raises(ValueError, match=r"unknown config key 'trian\.steps'"):
        cfg_with("trian.steps=5")


def test_override_without_equals_sign_is_refused():
    with pytest.raises(ValueError, match="not of the form key=value"):
        parse_overrides(["model.truncate"])


@pytest.mark.parametrize("items, message", [
    (["model.truncate=-1", "train.steps=1"], r"model\.truncate=-1 is invalid: use 'full'"),
    (["model.truncate=half", "train.steps=1"], r"model\.truncate='half' is invalid"),
    (["model.aux=reconstruct+", "train.steps=1"], r"model\.aux='reconstruct\+' is invalid: use 'none', 'both'"),
    (["optim.optimizer=sgd", "train.steps=1"], r"optim\.optimizer='sgd' is invalid: choose one of adam, rmsprop"),
    (["optim.schedule=linear", "train.steps=1"], r"optim\.schedule='linear' is invalid: choose one of constant, step, cosine"),
    (["train.steps=-5"], r"train\.steps=-5 is invalid: a phase length must be >= 0"),
    (["train.pretrain_epochs=-1", "train.steps=1"], r"train\.pretrain_epochs=-1 is invalid"),
    (["train.epochs=1", "train.steps=5"], r"give the training length in epochs or in steps, not both"),
    (["train.pretrain_epochs=1", "train.pretrain_steps=5", "train.steps=1"], r"pretraining length in epochs or in steps"),
    (["train.steps=0"], r"nothing to train"),
    (["model.aux=none", "train.pretrain_steps=10", "train.steps=1"],
     r"train\.pretrain_steps=10 needs an auxiliary loss, but model\.aux='none'.*reconstruct, predict, both"),
    (["optim.lr=0", "train.steps=1"], r"optim\.lr=0\.0 is invalid: must be a positive"),
    (["train.device=tpu", "train.steps=1"], r"train\.device='tpu' is invalid: choose one of auto, cpu, cuda"),
    (["model.subseq_len=1", "train.steps=1"], r"model\.subseq_len=1 is invalid"),
])
def test_bad_configs_are_refused_with_key_value_and_choices(items, message):
    with pytest.raises(ValueError, match=message):
        cfg_with(*items)


@pytest.mark.parametrize("value", ["full", 0, 7, "7", -1, "half", True, 1.5, "", [3]])
def test_model_truncate_and_auxmodel_truncate_have_one_parser(value):
    """The schema's model.truncate and AuxModel(truncate=) accept the same spellings, with one message."""
    from auxrnn import AuxModel
    from auxrnn.models import ModelConfig

    try:
        steps = ModelConfig(truncate=value).validate().truncate
    except ValueError as exc:
        with pytest.raises(ValueError, match=" is invalid: use 'full'") as core:
            AuxModel(truncate=value)
        assert str(exc) == f"model.{core.value}"
        return
    assert AuxModel(truncate=value).truncate == (None if steps == "full" else steps) and steps in ("full", 0, 7)


def test_model_aux_is_parsed_once_and_its_names_checked_in_one_place():
    """ModelConfig.objective_names is the one reading of model.aux; objective_classes the one registry check."""
    from auxrnn.core.objectives import Predict, Reconstruct
    from auxrnn.models import ModelConfig, objective_classes

    assert ModelConfig(aux="both").objective_names == ("reconstruct", "predict")
    assert ModelConfig(aux="predict+reconstruct").objective_names == ("predict", "reconstruct")
    assert objective_classes(ModelConfig(aux="both")) == (Reconstruct, Predict)
    assert objective_classes(ModelConfig(aux="both"), without=("reconstruct",)) == (Predict,)
    with pytest.raises(ValueError, match=r"model\.aux='predict\+predict' is invalid: use 'none', 'both'"):
        ModelConfig(aux="predict+predict").objective_names
    with pytest.raises(ValueError, match=r"model\.aux='x\+predict\+y' is invalid: unknown objective\(s\) \['x', 'y'\]"):
        objective_classes(ModelConfig(aux="x+predict+y"))


def test_an_unknown_objective_is_refused_before_any_work_naming_the_registered_ones():
    from auxrnn import models
    cfg = cfg_with("model.aux=decode", "train.steps=1")
    with pytest.raises(ValueError, match=r"model\.aux='decode' is invalid: unknown objective\(s\) \['decode'\].*"
                                         r"reconstruct, predict, reconstruct_values, predict_values"):
        models.check(cfg.model, cfg.arch)
    assert models.check(cfg_with("model.aux=predict+reconstruct_values", "train.steps=1").model, cfg.arch)


def test_subsequence_longer_than_the_sequence_is_refused():
    cfg = cfg_with("model.subseq_len=600", "train.steps=1")
    short = DatasetInfo("copy", 8, (9,), 100, False)
    from auxrnn import models
    with pytest.raises(ValueError, match=r"model\.subseq_len=600 is longer than the sequences of 'copy' \(length 100\).*<= 100"):
        models.check(fit_to_data(cfg, short).model, cfg.arch, short)
    plstm = cfg_with("model.aux=predict", "model.subseq_len=100", "train.steps=1")
    with pytest.raises(ValueError, match=r"model\.subseq_len=100 is longer.*<= 99"):
        models.check(fit_to_data(plstm, short).model, plstm.arch, short)
    both = cfg_with("model.aux=reconstruct_values+predict", "model.subseq_len=100", "train.steps=1")
    with pytest.raises(ValueError, match=r"model\.subseq_len=100 is longer.*<= 99"):
        models.check(fit_to_data(both, short).model, both.arch, short)
    assert models.check(fit_to_data(cfg_with("model.subseq_len=100", "train.steps=1"), short).model, cfg.arch, short)


def test_a_head_that_does_not_fit_the_data_is_refused():
    with pytest.raises(ValueError, match=r"model\.n_classes=5 does not fit dataset 'mnist' with 10 classes"):
        fit_to_data(cfg_with("model.n_classes=5", "train.steps=1"), MNIST)
    with pytest.raises(ValueError, match=r"model\.channels=\[256, 256, 256\] does not fit dataset 'mnist'"):
        fit_to_data(cfg_with("model.channels=[256,256,256]", "train.steps=1"), MNIST)


def test_channels_and_classes_are_filled_from_the_data():
    cfg = fit_to_data(cfg_with("train.steps=1"), DatasetInfo("cifar10", 10, (256, 256, 256), 1024, False))
    assert cfg.model.channels == (256, 256, 256) and cfg.model.n_classes == 10


def test_batch_larger_than_the_training_set_is_refused():
    with pytest.raises(ValueError, match=r"data\.batch_size=128 is larger than the training set \(64 examples"):
        fit_to_data(cfg_with("train.steps=1", "model.subseq_len=10"), DatasetInfo("copy", 8, (9,), 30, False), n_train=64)


@pytest.mark.parametrize("name", list_presets())
def test_every_preset_loads_and_validates(name):
    cfg = build_config(name)
    assert cfg.preset == name
    shape = static_info(cfg.data.name, cfg.data.options)
    assert shape is not None, f"preset {name}: dataset shape unknown without data"
    fit_to_data(cfg, shape)
    check(cfg.model, cfg.arch, shape)  # what needs model code, e.g. a Transformer matched to the r-LSTM


def test_presets_cover_every_paper_cell():
    names = set(list_presets())
    for ds in ("mnist", "pmnist", "cifar10"):
        for m in ("lstm_full", "lstm_t300", "rlstm_t300", "plstm_t300", "rlstm_full", "plstm_full"):
            assert f"{ds}_{m}" in names
    for m in ("rlstm", "plstm"):
        for k in (200, 100, 50, 1, 0):
            assert f"cifar10_{m}_t{k}" in names
    assert {"dogs_rlstm", "dogs_plstm", "dogs_rlstm_20x30", "dogs_lstm", "dbpedia_rlstm", "dbpedia_plstm",
            "dbpedia_lstm", "default"} <= names


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown preset 'nope'.*mnist_rlstm_t300"):
        build_config("nope")


def test_cli_refuses_a_bad_config_before_any_work(capsys, tmp_path):
    rc = main(["train", "model.truncate=-3", f"train.out={tmp_path / 'run'}"])
    assert rc == 2
    assert "model.truncate=-3 is invalid" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_cli_check_prints_the_resolved_config(capsys):
    assert main(["train", "--check", "--preset", "mnist_rlstm_t300", "optim.lr=5e-4"]) == 0
    out = capsys.readouterr().out
    assert "lr: 0.0005" in out and "truncate: 300" in out and "n_classes: 10" in out


PAPER = {  # Trinh et al. 2018, section 2 (the review's architecture) and the Fig. 3 caption (batch 128)
    "model.embed_dim": 128, "model.hidden": 128, "model.cell": "lstm", "model.ffn_hidden": 256,
    "model.n_anchors": 1, "model.subseq_len": 600, "model.aux_truncate": 300, "model.aux_hidden": 256,
    "model.aux_layers": 2, "data.batch_size": 128,
}
TABLE2 = [f"{ds}_{m}" for ds in ("mnist", "pmnist", "cifar10")
          for m in ("lstm_full", "lstm_t300", "rlstm_t300", "plstm_t300", "rlstm_full", "plstm_full")]


def _flat(cfg):
    return {f"{s}.{k}": v for s, d in cfg.to_dict().items() if isinstance(d, dict) for k, v in d.items()}


@pytest.mark.parametrize("name", TABLE2)
def test_table2_presets_have_the_papers_settings(name):
    flat = _flat(build_config(name))
    for key, want in PAPER.items():
        assert flat[key] == want, f"{name}: {key}={flat[key]!r}, the paper's is {want!r}"
    assert flat["model.truncate"] == ("full" if name.endswith("_full") else 300)
    assert flat["model.aux"] == {"lstm": "none", "rlstm": "reconstruct", "plstm": "predict"}[name.split("_")[1]]
    assert flat["train.pretrain_epochs"] == (0 if flat["model.aux"] == "none" else 20)


@pytest.mark.parametrize("cell", ["lstm_t300", "rlstm_t300", "plstm_t300", "lstm_full"])
def test_cpu_scale_cells_differ_from_the_paper_presets_only_where_allowed(cell):
    """Scaled down: the auxiliary model and the number of steps (and what is only evaluated or logged)."""
    paper, cpu = _flat(build_config(f"mnist_{cell}")), _flat(build_config(f"mnist_cpu_{cell}"))
    allowed = {"model.aux_hidden", "model.aux_layers", "data.val_size", "data.eval_batch_size"}
    differ = {k for k in paper if paper[k] != cpu[k] and not k.startswith("train.") and k not in allowed}
    assert differ == set(), {k: (paper[k], cpu[k]) for k in differ}


def test_dataset_names_come_from_the_data_registry_alone(tmp_path):
    """One list of dataset names: the data layer's registry. A run refuses a name it lacks before making its
    folder, and --help-keys lists exactly its names."""
    from auxrnn.data import DATASETS
    from auxrnn.train.keys import describe_keys
    from auxrnn.train.runs import new_run

    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"data\.name='imagenet' is invalid: choose one of mnist, pmnist"):
        new_run("default", {"data.name": "imagenet", "train.out": str(out)})
    assert not out.exists()
    (line,) = [k.help for k in describe_keys() if k.key == "data.name"]
    assert line.endswith(f"[{' | '.join(DATASETS)}]")
