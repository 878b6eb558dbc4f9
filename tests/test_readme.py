"""The README: what auxrnn is first, then the two fresh-machine commands (the second is what CI runs), an
own-data command and a library example that run as written, and numbers that all come from docs/."""
import re
import shlex
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_library_example_runs():
    (code,) = re.findall(r"## Library use\n.*?```python\n(.*?)```", README, re.S)
    scope = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["logits"].shape == (8, 5)
    assert scope["out"].aux_loss is not None and scope["out"].sup_loss is not None


def test_readme_says_what_auxrnn_is_then_gives_the_two_fresh_machine_commands():
    lines = README.splitlines()
    assert lines[0] == "# auxrnn" and lines[2].startswith("auxrnn is a PyTorch library")
    assert README.index("auxrnn is") < README.index("```bash")
    block = re.search(r"```bash\n(.*?)```", README, re.S).group(1).strip().splitlines()
    assert len(block) == 2
    assert block[0].endswith("auxrnn train") and block[1].endswith("python -m pytest -q")
    assert len(README.splitlines()) < 150


def test_ci_runs_the_readmes_test_command_with_every_test():
    """The README's pytest line is CI's, which adds the slow tests back (pyproject deselects them by default)."""
    ci = (ROOT / ".ci" / "run").read_text()
    pytest_line = README.split("```bash\n", 1)[1].splitlines()[1].rsplit("&& ", 1)[1]
    (run,) = [line for line in ci.splitlines() if line.startswith(pytest_line + " ")]
    assert '-m "slow or not slow"' in run and "--durations=25" in run
    assert "pip install -q -e '.[cpu,dev,lightning]'" in ci
    config = __import__("tomllib").loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert config["addopts"] == ["-m", "not slow"]


def test_the_own_data_command_runs_as_written(tmp_path, monkeypatch, capsys):
    """Every line of the README's own-data block, on a tiny real-valued folder (the training made tiny by
    overrides appended after the README's own keys, which the later ones replace)."""
    from auxrnn.cli import main

    (block,) = re.findall(r"## Your own sequences\n.*?```bash\n(.*?)```", README, re.S)
    commands = [shlex.split(c) for c in block.replace("\\\n", " ").strip().splitlines()]
    assert all(c[0] == "auxrnn" for c in commands) and not block.rstrip().endswith("...")
    train = next(c for c in commands if c[1] == "train")
    for key in ("data.options.test_size=", "data.options.quantiser=none", "model.encoder=linear",
                "model.aux=reconstruct_values"):
        assert any(a.startswith(key) for a in train), key
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_data").mkdir()
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 40)
    np.save(tmp_path / "my_data" / "x.npy", (rng.normal(size=(40, 650, 2)) + y[:, None, None]).astype(np.float32))
    np.save(tmp_path / "my_data" / "y.npy", y)
    tiny = ["train.pretrain_steps=1", "train.steps=2", "model.hidden=8", "model.aux_hidden=8", "model.aux_layers=1",
            "model.ffn_hidden=8", "model.subseq_len=20", "model.aux_truncate=20", "model.truncate=20"]
    for argv in commands:
        extra = tiny if argv[1] == "train" else []
        assert main([*argv[1:], *extra]) == 0, argv
    assert "test accuracy" in capsys.readouterr().out


def test_every_number_in_what_you_get_and_does_it_work_is_in_docs():
    """The README keeps no number of its own: each one is in a file under docs/ (prose, summaries, bench JSON)."""
    part = README.split("## What you get", 1)[1].split("## Your own sequences", 1)[0]
    part = re.sub(r"`[^`]*`", " ", part)  # commands and keys are not results
    numbers = set(re.findall(r"(?<![\w.])\d+\.\d+(?![\w.])", part))
    docs = " ".join(p.read_text() for p in (ROOT / "docs").rglob("*") if p.suffix in (".md", ".json", ".txt"))
    assert len(numbers) > 15
    assert sorted(n for n in numbers if n not in docs) == []
    for claim in ("seed 0", "seed 1", "Intel Xeon", "AMD EPYC", "one seed"):
        assert claim in part, claim


def test_citation_file_and_the_papers_bibtex():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "MIT"
    paper = cff["preferred-citation"]
    assert paper["title"] == "Learning Longer-term Dependencies in RNNs with Auxiliary Losses"
    assert [a["family-names"] for a in paper["authors"]] == ["Trinh", "Dai", "Luong", "Le"]
    assert paper["volume"] == 80 and paper["year"] == 2018
    (bib,) = re.findall(r"```bibtex\n(.*?)```", README, re.S)
    assert "1803.00144" in bib and "{80}" in bib and "Trinh, Trieu H. and Dai" in bib


def test_packaging_says_posix_and_ships_its_types():
    project = __import__("tomllib").loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "Operating System :: POSIX" in project["classifiers"]
    assert any(c.startswith("Programming Language :: Python :: 3.") for c in project["classifiers"])
    assert (ROOT / "src" / "auxrnn" / "py.typed").exists() and "fcntl" in README and "Not Windows" in README


def test_contributing_layout_matches_the_tree():
    """Every path the Layout block of docs/contributing.md names exists, and every package and module of
    src/auxrnn is named."""
    root = ROOT
    text = (root / "docs" / "contributing.md").read_text()
    (block,) = re.findall(r"## Layout\n\n```\n(.*?)```", text, re.S)
    named = [m for m in re.findall(r"^(\S+)", block, re.M)]
    for path in named:
        assert (root / path.rstrip("/")).exists(), f"the Layout names {path}, which does not exist"
    pkg = root / "src" / "auxrnn"
    parts = sorted(p.name for p in pkg.iterdir() if (p.is_dir() and (p / "__init__.py").exists())
                   or (p.suffix == ".py" and p.name not in ("__init__.py", "__main__.py")))
    listed = {Path(p.rstrip("/")).name.replace(".py", "") for p in named}
    assert [p for p in parts if p.replace(".py", "") not in listed] == []


def test_docs_and_scripts_speak_of_the_project_only():
    """No word of the environment the project was built in: sessions, a folder that comes back, transfer limits."""
    root = Path(__file__).resolve().parents[1]
    files = [root / "README.md", *sorted((root / "docs").glob("*.md")), *sorted((root / "scripts").glob("*.sh"))]
    for path in files:
        text = path.read_text().lower()
        for phrase in ("session", "comes back", "$out", "15 mib", "issue notes", "as runs complete"):
            assert phrase not in text, f"{path.relative_to(root)} says {phrase!r}"
        # a 15-minute device budget, not a wall time such as "15m46s" in a results table
        assert not re.search(r"\b15 ?m(in(ute)?s?)?\b", text), f"{path.relative_to(root)} names a 15-minute budget"
