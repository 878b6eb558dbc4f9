"""Our numbers beside the paper's: the markdown table of an experiment, and its accuracy curves."""
from __future__ import annotations

import re
from pathlib import Path

from auxrnn.reproduce.experiments import get
from auxrnn.reproduce.runner import DEFAULT_ROOT, cell_command, cell_dir
from auxrnn.train.metrics import read_summary

RESULTS = "results.md"  # the report, written under the runs folder (--out) unless --results names another file


def collect(name: str, root: Path = DEFAULT_ROOT) -> list[dict]:
    """One row per cell: the paper's number and, where a run folder has a summary, ours."""
    exp = get(name)
    rows = []
    for cell in exp.cells:
        folder = cell_dir(exp, cell, root)
        s = read_summary(folder) or {}
        rows.append({"cell": cell, "folder": folder, "summary": s})
    return rows


def _wall(seconds) -> str:
    if not isinstance(seconds, (int, float)):
        return "–"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def markdown_table(name: str, root: Path = DEFAULT_ROOT) -> str:
    """Our final test accuracy beside the paper's, with validation, steps, epochs, time, device and command."""
    exp = get(name)
    lines = [f"### {exp.title}", "", exp.note, "",
             "| cell | model | setting | ours | validation | paper | status | steps | epochs | wall time | device "
             "| seed | command |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in collect(name, root):
        cell, s = r["cell"], r["summary"]
        finished = s.get("status") == "finished"
        ours, val = (_pct(s.get(k)) if finished else "–" for k in ("test_accuracy", "val_accuracy"))
        status = s.get("status", "not run")
        if status not in ("finished", "not run", "oom"):
            status = f"{status} at step {s.get('steps', '?')}"
        epochs = f"{s['epochs']:.2f}" if isinstance(s.get("epochs"), (int, float)) else "–"
        lines.append(
            f"| {cell.id} | {cell.row} | {cell.column or '–'} | {ours} | {val} | {cell.paper} | {status} | "
            f"{s.get('steps', '–')} | {epochs} | {_wall(s.get('wall_seconds'))} | {s.get('device', '–')} | "
            f"{s.get('seed', '–')} | `{cell_command(exp, cell)}` |")
    return "\n".join(lines) + "\n"


def _pct(value) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) else "–"


def plot_curves(name: str, root: Path = DEFAULT_ROOT, out: Path | None = None) -> Path | None:
    """One PNG of every cell's test accuracy (solid) and validation accuracy (dotted) against training examples.

    Examples are global steps x batch size, pretraining steps included. Written to `out`, by default
    <root>/<experiment>.png; None when no cell has an evaluation yet.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from auxrnn.train.metrics import read_metrics

    exp = get(name)
    fig, ax = plt.subplots(figsize=(8, 6))
    drawn = 0
    for r in collect(name, root):
        evals = [m for m in read_metrics(r["folder"]) if m.get("kind") == "eval"]
        batch = _batch_size(r["folder"])
        if not evals or batch is None:
            continue
        x = [m["step"] * batch for m in evals]
        line, = ax.plot(x, [m["test_acc"] for m in evals], marker="o", markersize=3, label=r["cell"].row)
        val = [(xi, m["val_acc"]) for xi, m in zip(x, evals) if "val_acc" in m]
        if val:
            ax.plot(*zip(*val), linestyle=":", color=line.get_color())
        drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("training examples (steps x batch, pretraining included)")
    ax.set_ylabel("accuracy (%): test solid, validation dotted")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize=8)  # below: never over a curve
    ax.set_title(exp.title, fontsize=10)
    fig.tight_layout()
    out = Path(out) if out else Path(root) / f"{name}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _batch_size(folder: Path) -> int | None:
    import yaml

    path = Path(folder) / "config.yaml"
    if not path.exists():
        return None
    return int((yaml.safe_load(path.read_text()) or {}).get("data", {}).get("batch_size", 0)) or None


def publish(name: str, root: Path, dest: Path) -> list[Path]:
    """Copy each cell's config.yaml, summary.json and metrics.jsonl (never checkpoints) to dest/<exp>/<cell>/.

    The table and the plot can then be regenerated from `dest` alone:
    `auxrnn reproduce NAME --collect --out dest`.
    """
    import shutil

    exp = get(name)
    copied = []
    for cell in exp.cells:
        src = cell_dir(exp, cell, root)
        if read_summary(src) is None:
            continue
        target = cell_dir(exp, cell, dest)
        target.mkdir(parents=True, exist_ok=True)
        for fname in ("config.yaml", "summary.json", "metrics.jsonl"):
            if (src / fname).exists():
                shutil.copyfile(src / fname, target / fname)
                copied.append(target / fname)
    return copied


def update_results(path: Path, name: str, table: str) -> None:
    """Replace (or append) the generated section of experiment `name` in `path` (docs/results.md)."""
    path = Path(path)
    begin, end = f"<!-- BEGIN auxrnn reproduce {name} -->", f"<!-- END auxrnn reproduce {name} -->"
    text = path.read_text() if path.exists() else (
        "# Results\n\nGenerated by `auxrnn reproduce NAME` from the run folders' summary.json; "
        "do not edit between the markers.\n")
    block = f"{begin}\n{table}{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
