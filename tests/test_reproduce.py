"""`auxrnn reproduce`: every experiment lists its cells; a run fills the table beside the paper's numbers."""
from __future__ import annotations

import json
import re

import pytest

from auxrnn import reproduce
from auxrnn.cli import main
from auxrnn.train.config import build_config, list_presets, parse_overrides

NAMES = ["table2-mnist", "table2-pmnist", "table2-cifar10", "figure3", "figure4", "dbpedia", "ablation-anchors",
         "ablation-subseq", "ablation-weight"]


def test_every_promised_experiment_exists():
    assert set(NAMES) <= set(reproduce.EXPERIMENTS)


@pytest.mark.parametrize("name", list(reproduce.EXPERIMENTS))
def test_dry_run_lists_every_cell_with_its_command(name, capsys, tmp_path):
    assert main(["reproduce", name, "--dry-run", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    exp = reproduce.get(name)
    for cell in exp.cells:
        assert f"auxrnn train --preset {cell.preset}" in out
        assert str(reproduce.cell_dir(exp, cell, tmp_path)) in out
    assert not any(tmp_path.iterdir())  # a dry run writes nothing


@pytest.mark.parametrize("name", list(reproduce.EXPERIMENTS))
def test_every_cell_command_is_a_valid_config(name):
    exp = reproduce.get(name)
    for cell in exp.cells:
        assert cell.preset in list_presets()
        build_config(cell.preset, parse_overrides([f"{k}={v}" for k, v in cell.overrides.items()]))


def test_paper_numbers_are_carried_with_their_precision():
    """Exact table values keep one decimal, digitized figure values say so (≈), unknown ones say unknown."""
    for name in ("table2-mnist", "table2-pmnist", "table2-cifar10"):
        assert all(re.fullmatch(r"\d+\.\d", c.paper) for c in reproduce.get(name).cells), name
    f3 = reproduce.get("figure3")
    assert len(f3.cells) == 40 and {c.overrides["data.options.side"] for c in f3.cells} == {40, 48, 56, 72, 80, 96, 112, 128}
    assert all(c.paper.startswith("≈") or c.paper == "no point" for c in f3.cells)
    assert {c.paper for c in reproduce.get("dbpedia").cells} == {"unknown"}


def test_numbers_that_two_experiments_share_agree():
    """Figure 4's Truncate300 points are Table 2's CIFAR-10 cells (same run, same number); the CPU-scale
    MNIST table quotes Table 2's full-scale numbers."""
    t2c = {c.id: c for c in reproduce.get("table2-cifar10").cells}
    for c in reproduce.get("figure4").cells:
        if c.run:
            cid = c.run.split("/")[1]
            assert c.run == f"table2-cifar10/{cid}" and c.paper == t2c[cid].paper and c.preset == t2c[cid].preset
    t2m = {c.id: c.paper for c in reproduce.get("table2-mnist").cells}
    for c in reproduce.get("table2-mnist-cpu").cells:
        if c.id in t2m:
            assert c.paper == f"{t2m[c.id]} (full scale)"


def test_dry_run_selects_cells_and_refuses_unknown_ones(capsys, tmp_path):
    assert main(["reproduce", "figure3", "--dry-run", "--cells", "rlstm-40,lstm-*", "--device", "cuda"]) == 0
    out = capsys.readouterr().out
    assert out.count("auxrnn train") == 9 and "train.device=cuda" in out and "data.options.side=40" in out
    assert main(["reproduce", "figure3", "--dry-run", "--cells", "gru-40"]) == 2
    assert "has no cell 'gru-40'" in capsys.readouterr().err


def test_reproduce_runs_resumes_and_tabulates(tmp_path, monkeypatch, capsys):
    preset = tmp_path / "tiny.yaml"
    preset.write_text("\n".join([
        "data.name: copy", "data.options.length: 30", "data.options.size: 16", "data.batch_size: 8",
        "model.subseq_len: 10", "model.truncate: 10", "model.aux_truncate: 10", "model.hidden: 16",
        "model.embed_dim: 8", "model.aux_hidden: 16", "model.ffn_hidden: 16", "train.steps: 2",
        "train.tensorboard: false"]) + "\n")
    exp = reproduce.Experiment("tiny", "A tiny table", "For the test.", [
        reproduce.Cell("a", "r-LSTM", str(preset), "96.4"),
        reproduce.Cell("b", "p-LSTM", str(preset), "≈63.1", {"model.aux": "predict"})])
    monkeypatch.setitem(reproduce.EXPERIMENTS, "tiny", exp)
    results = tmp_path / "results.md"
    results.write_text("# Results\n\nhand-written text stays\n")
    root = tmp_path / "runs"
    assert main(["reproduce", "tiny", "--out", str(root), "--results", str(results), "--cells", "a"]) == 0
    assert json.loads((root / "tiny" / "a" / "summary.json").read_text())["status"] == "finished"
    assert not (root / "tiny" / "b").exists()
    assert main(["reproduce", "tiny", "--out", str(root), "--results", str(results)]) == 0  # a is skipped, b runs
    text = results.read_text()
    assert "hand-written text stays" in text
    assert text.count("<!-- BEGIN auxrnn reproduce tiny -->") == 1
    rows = [line for line in text.splitlines() if line.startswith("| a ") or line.startswith("| b ")]
    assert len(rows) == 2
    assert "| 96.4 | finished |" in rows[0] and "| ≈63.1 | finished |" in rows[1]
    assert f"--preset {preset}" in rows[1] and "model.aux=predict" in rows[1]
    summary = json.loads((root / "tiny" / "b" / "summary.json").read_text())
    assert f"| {summary['test_accuracy']:.2f} |" in rows[1]
    assert f"| {summary['steps']} | {summary['epochs']:.2f} |" in rows[1]
    assert (root / "tiny.png").stat().st_size > 1000  # both cells' curves in one picture


def test_published_run_files_regenerate_the_same_table(tmp_path, monkeypatch):
    preset = tmp_path / "tiny.yaml"
    preset.write_text("\n".join([
        "data.name: copy", "data.options.length: 20", "data.options.size: 16", "data.batch_size: 8",
        "data.val_size: 4", "model.aux: none", "model.truncate: 5", "model.hidden: 8", "model.embed_dim: 4",
        "model.ffn_hidden: 8", "train.steps: 2", "train.eval_every: 1", "train.tensorboard: false"]) + "\n")
    exp = reproduce.Experiment("tiny", "A tiny table", "For the test.", [reproduce.Cell("a", "LSTM", str(preset), "11.3")])
    monkeypatch.setitem(reproduce.EXPERIMENTS, "tiny", exp)
    root, docs = tmp_path / "runs", tmp_path / "docs"
    assert main(["reproduce", "tiny", "--out", str(root), "--results", str(tmp_path / "r.md"), "--publish", str(docs)]) == 0
    assert sorted(p.name for p in (docs / "tiny" / "a").iterdir()) == ["config.yaml", "metrics.jsonl", "summary.json"]
    assert (docs / "tiny.png").exists() and not list(docs.rglob("*.pt"))
    assert reproduce.markdown_table("tiny", docs) == reproduce.markdown_table("tiny", root)
    row = next(line for line in reproduce.markdown_table("tiny", docs).splitlines() if line.startswith("| a "))
    summary = json.loads((docs / "tiny" / "a" / "summary.json").read_text())
    assert f"| {summary['test_accuracy']:.2f} | {summary['val_accuracy']:.2f} | 11.3 | finished | 2 |" in row


def test_collect_shows_cells_not_run_yet(tmp_path):
    table = reproduce.markdown_table("table2-mnist", tmp_path)
    assert table.count("| not run |") == 7 and "| 11.3 |" in table


def test_the_report_goes_under_the_runs_folder_by_default(tmp_path, monkeypatch, capsys):
    """Never into ./docs/results.md of whatever folder reproduce runs from; --results names another file."""
    monkeypatch.chdir(tmp_path)
    assert main(["reproduce", "ablation-weight", "--collect", "--out", "runs"]) == 0
    assert capsys.readouterr().out.endswith("updated runs/results.md\n")
    assert "<!-- BEGIN auxrnn reproduce ablation-weight -->" in (tmp_path / "runs" / "results.md").read_text()
    assert not (tmp_path / "docs").exists()
    assert main(["reproduce", "ablation-weight", "--collect", "--out", "runs", "--results", "docs/results.md"]) == 0
    assert (tmp_path / "docs" / "results.md").exists()
