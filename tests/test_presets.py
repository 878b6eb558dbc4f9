"""Presets: each resolves to exactly the configuration recorded in tests/data/presets_resolved.json; bases."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from auxrnn.cli import main
from auxrnn.train.config import build_config, list_presets

RESOLVED = json.loads((Path(__file__).parent / "data" / "presets_resolved.json").read_text())


def test_the_snapshot_covers_every_shipped_preset():
    assert sorted(RESOLVED) == list_presets()


@pytest.mark.parametrize("name", sorted(RESOLVED))
def test_every_preset_resolves_to_its_recorded_config(name):
    assert build_config(name).to_dict() == RESOLVED[name]


def test_paper_presets_share_one_base_for_the_optimizer():
    from auxrnn.train.config import PRESETS, preset_layers

    for name in list_presets():
        if name != "default":
            assert preset_layers(name)[0][0].name == "_paper.yaml", name
    texts = [f.read_text() for f in PRESETS.iterdir() if f.name.endswith(".yaml")]
    assert sum("optim.schedule: step" in t for t in texts) == 1 and sum("optim.clip: 1.0" in t for t in texts) == 1


def test_check_prints_the_chain_of_bases(capsys):
    assert main(["train", "--check", "--preset", "pmnist_rlstm_t300"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("# preset pmnist_rlstm_t300 <- mnist_rlstm_t300 <- _mnist <- _paper")


def _write(folder, name, text):
    (folder / f"{name}.yaml").write_text(text)


def test_a_base_is_applied_first_and_a_new_dataset_drops_its_options(tmp_path):
    _write(tmp_path, "_base", "data.name: pmnist\ndata.options.perm_seed: 3\ntrain.steps: 5\nmodel.hidden: 32\n")
    _write(tmp_path, "child", "base: _base\nmodel.hidden: 64\n")
    _write(tmp_path, "other", "base: child\ndata.name: mnist\n")
    cfg = build_config("child", config_dir=tmp_path)
    assert (cfg.model.hidden, cfg.train.steps, cfg.data.options) == (64, 5, {"perm_seed": 3})
    assert build_config("other", config_dir=tmp_path).data.options == {}
    assert list_presets(tmp_path) == ["child", "other"]  # `_NAME` is a base, not a run


def test_a_preset_file_may_name_a_shipped_preset_or_a_file_beside_it(tmp_path, capsys):
    _write(tmp_path, "mine", "base: mnist_rlstm_t300\ntrain.aux_weight: 2\n")
    _write(tmp_path, "local", "base: mine.yaml\noptim.lr: 5e-4\n")
    cfg = build_config(str(tmp_path / "local.yaml"))
    want = build_config("mnist_rlstm_t300", {"train.aux_weight": 2, "optim.lr": 5e-4})
    assert cfg.to_dict() | {"preset": ""} == want.to_dict() | {"preset": ""}
    assert main(["presets", str(tmp_path / "local.yaml")]) == 0
    assert "# preset local <- mine <- mnist_rlstm_t300 <- _mnist <- _paper" in capsys.readouterr().out


def test_cycles_and_missing_bases_are_clear_errors(tmp_path, capsys):
    _write(tmp_path, "a", "base: b\ntrain.steps: 1\n")
    _write(tmp_path, "b", "base: a\n")
    _write(tmp_path, "lost", "base: nowhere\ntrain.steps: 1\n")
    _write(tmp_path, "odd", "base: [a]\ntrain.steps: 1\n")
    with pytest.raises(ValueError, match=r"preset a\.yaml: its bases form a cycle: a\.yaml -> b\.yaml -> a\.yaml"):
        build_config("a", config_dir=tmp_path)
    with pytest.raises(ValueError, match=r"preset lost\.yaml: base 'nowhere': unknown preset 'nowhere'"):
        build_config("lost", config_dir=tmp_path)
    with pytest.raises(ValueError, match=r"preset odd\.yaml: base must name another preset, got \['a'\]"):
        build_config("odd", config_dir=tmp_path)
    assert main(["train", "--check", "--preset", str(tmp_path / "lost.yaml")]) == 2
    assert "base 'nowhere'" in capsys.readouterr().err
