"""A lean install: StanfordDogs and TensorBoard are extras, each named when missing; metadata and license."""
from __future__ import annotations

import importlib.util
import json
import logging
import re
import sys
from pathlib import Path

import pytest

from auxrnn.cli import main
from auxrnn.data import StanfordDogs
from auxrnn.train import metrics
from conftest import tiny_args

ROOT = Path(__file__).resolve().parents[1]


def _without(monkeypatch, *names):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in names else real(name, *a))


def test_stanforddogs_without_its_extra_names_it_before_fetching(tmp_path, monkeypatch, capsys):
    _without(monkeypatch, "scipy")
    monkeypatch.setattr(StanfordDogs, "download", lambda self: pytest.fail("fetched without the readers"))
    with pytest.raises(RuntimeError, match=r"StanfordDogs needs scipy, .*pip install 'auxrnn\[dogs\]'"):
        StanfordDogs("train", root=tmp_path)
    _without(monkeypatch, "scipy", "PIL")
    assert main(["data", "fetch", "stanforddogs", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "needs scipy and pillow" in err and "pip install 'auxrnn[dogs]'" in err and "Traceback" not in err


def test_without_tensorboard_a_run_warns_once_and_writes_metrics_jsonl(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # `import` of it raises ImportError
    monkeypatch.setattr(metrics, "_warned", [])
    caplog.set_level(logging.WARNING, logger="auxrnn")
    for name in ("a", "b"):
        run = tmp_path / name
        assert main(["train", *tiny_args(16, 8, tensorboard=True), "train.steps=2", f"train.out={run}",
                     "--no-progress"]) == 0
        assert [json.loads(x)["kind"] for x in (run / "metrics.jsonl").read_text().splitlines()].count("train") == 2
        assert not (run / "tensorboard").exists()
    warnings = [r.getMessage() for r in caplog.records if "TensorBoard is not installed" in r.getMessage()]
    assert len(warnings) == 1 and "pip install 'auxrnn[tensorboard]'" in warnings[0]


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _names(requirements):
    return {re.split(r"[<>=!~\[ ]", r, maxsplit=1)[0].lower() for r in requirements}


def test_the_dev_extra_installs_every_optional_dependency_the_tests_cover():
    extras = _pyproject()["project"]["optional-dependencies"]
    assert _names(extras["dogs"]) == {"scipy", "pillow"} and _names(extras["tensorboard"]) == {"tensorboard"}
    assert _names(extras["dogs"]) | _names(extras["tensorboard"]) <= _names(extras["dev"])
    assert extras["cpu"] == ["torch==2.13.0"]  # exactly the PyTorch the project is tested with
    assert not _names(_pyproject()["project"]["dependencies"]) & {"scipy", "pillow", "tensorboard"}


def test_license_and_urls_match_the_metadata():
    project = _pyproject()["project"]
    assert project["license"] == "MIT" and (ROOT / "LICENSE").read_text().startswith("MIT License")  # SPDX
    assert project["urls"] and all(u.startswith("https://") for u in project["urls"].values())
