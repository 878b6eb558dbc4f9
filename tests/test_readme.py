"""The README's library example runs as written, and its first lines give the two promised commands."""
import re
from pathlib import Path

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_library_example_runs():
    (code,) = re.findall(r"## Library use\n.*?```python\n(.*?)```", README, re.S)
    scope = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["logits"].shape == (8, 5)
    assert scope["out"].aux_loss is not None and scope["out"].sup_loss is not None


def test_readme_starts_with_the_two_fresh_machine_commands():
    block = re.search(r"```bash\n(.*?)```", README, re.S).group(1).strip().splitlines()
    assert len(block) == 2
    assert block[0].endswith("auxrnn train") and "pytest" in block[1]
    assert "pytest" in (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()


def test_readme_layout_matches_the_tree():
    """Every path the Layout block names exists, and every package and module of src/auxrnn is named."""
    root = Path(__file__).resolve().parents[1]
    (block,) = re.findall(r"## Layout\n\n```\n(.*?)```", README, re.S)
    named = [m for m in re.findall(r"^(\S+)", block, re.M)]
    for path in named:
        assert (root / path.rstrip("/")).exists(), f"README Layout names {path}, which does not exist"
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
