"""What users read says the thing itself: no decision ids (docs/decisions.md's "T19", "M13") in CLI output,
`--help-keys`, `auxrnn presets`, help texts or any message. The ids stay in code comments and the docs."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from auxrnn.cli import main
from auxrnn.train.config import list_presets

DECISION_ID = re.compile(r"\b[DTMBX]\d+\b")
SRC = Path(__file__).resolve().parents[1] / "src" / "auxrnn"


def _ids(text: str) -> list[str]:
    return sorted(set(DECISION_ID.findall(text)))


def _output(capsys, *argv: str) -> str:
    try:
        main(list(argv))
    except SystemExit:  # --help exits
        pass
    out = capsys.readouterr()
    return out.out + out.err


@pytest.mark.parametrize("argv", [("train", "--help-keys"), ("presets",), ("--help",),
                                  *((name, "--help") for name in ("train", "eval", "predict", "data", "bench",
                                                                  "reproduce", "presets"))])
def test_help_and_listings_name_no_decision_ids(argv, capsys):
    assert _ids(_output(capsys, *argv)) == []


def test_every_resolved_preset_names_no_decision_ids(capsys):
    found = {name: _ids(_output(capsys, "presets", name)) for name in list_presets()}
    assert {name: ids for name, ids in found.items() if ids} == {}


def _non_docstring_strings(tree: ast.AST):
    """Every string literal of a module except docstrings: messages, help texts, report titles, keys."""
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node


def test_no_message_of_the_code_names_a_decision_id():
    """Every error, warning, printed line and help string is a literal in src/auxrnn (comments are not)."""
    found = [f"{path.relative_to(SRC)}:{node.lineno}: {node.value[:80]!r}"
             for path in sorted(SRC.rglob("*.py")) for node in _non_docstring_strings(ast.parse(path.read_text()))
             if DECISION_ID.search(node.value)]
    assert found == []


@pytest.mark.parametrize("items", [
    ["model.truncate=-1"], ["model.aux=reconstruct+"], ["model.aux=decode"], ["model.encoder=pixels"],
    ["arch.name=lstm"], ["arch.name=transformer", "train.pretrain_steps=3"], ["optim.optimizer=sgd"],
    ["train.keep_best=true"], ["model.subseq_len=1"], ["model.chunk=0"],
])
def test_refusals_name_no_decision_ids(items, capsys, tmp_path):
    rc = main(["train", *items, "train.steps=1", f"train.out={tmp_path / 'run'}", "--check"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("auxrnn train: error: "), err
    assert _ids(err) == []
