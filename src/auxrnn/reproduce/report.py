"""Our numbers beside the paper's: the markdown table of an experiment, and its accuracy curves."""
from __future__ import annotations

import re
from collections import Counter
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
             "| precision | seed | command |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    rows = collect(name, root)
    for r in rows:
        cell, s = r["cell"], r["summary"]
        finished = s.get("status") == "finished"
        ours, val = (_pct(s.get(k)) if finished else "–" for k in ("test_accuracy", "val_accuracy"))
        status = s.get("status", "not run")
        if cell.until_step is not None and status == "until_step":  # a cell of the first N steps: validation there
            at = [m for m in _evals(r["folder"]) if m["step"] == cell.until_step and "val_acc" in m]
            val = _pct(at[-1]["val_acc"]) if at else "–"
            status = f"stopped at step {s.get('steps', '?')} as planned"
        elif status not in ("finished", "not run", "oom"):
            status = f"{status} at step {s.get('steps', '?')}"
        epochs = f"{s['epochs']:.2f}" if isinstance(s.get("epochs"), (int, float)) else "–"
        lines.append(
            f"| {cell.id} | {cell.row} | {cell.column or '–'} | {ours} | {val} | {cell.paper} | {status} | "
            f"{s.get('steps', '–')} | {epochs} | {_wall(s.get('wall_seconds'))} | {s.get('device', '–')} | "
            f"{s.get('precision', '–')} | {s.get('seed', '–')} | `{cell_command(exp, cell)}` |")
    table = "\n".join(lines) + "\n"
    return table + train_test_table(rows) if exp.plot == "train-test" else table


def train_test_table(rows: list[dict]) -> str:
    """Fig. 5's question as numbers: at each evaluation step, every cell's accuracy on the fixed training subset,
    on test, and the gap (train - test). Empty until a cell has scored its training subset. rows: collect()'s."""
    scored = [(label, {m["step"]: m for m in _evals(r["folder"]) if "train_eval_acc" in m})
              for r, label in zip(rows, curve_labels(rows))]
    scored = [(label, by_step) for label, by_step in scored if by_step]
    if not scored:
        return ""
    head = "| step | " + " | ".join(f"{label}: train | test | gap" for label, _ in scored) + " |"
    lines = ["", "Train (fixed subset) against test at each evaluation; gap = train - test, in points.", "", head,
             "|---|" + "---|---|---|" * len(scored)]
    for step in sorted({s for _, by_step in scored for s in by_step}):
        cells = []
        for _, by_step in scored:
            m = by_step.get(step)
            cells += ([_pct(m["train_eval_acc"]), _pct(m["test_acc"]), f"{m['train_eval_acc'] - m['test_acc']:+.2f}"]
                      if m else ["–", "–", "–"])
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _pct(value) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) else "–"


CHANCE = 10.0  # ten balanced classes: every MNIST / CIFAR-10 table


def plot_curves(name: str, root: Path = DEFAULT_ROOT, out: Path | None = None) -> Path | None:
    """The experiment's figure as a PNG, drawn as its `plot` says; None when no cell has an evaluation yet.

    "curves": every cell's test accuracy (solid) and validation accuracy (dotted) against training examples
    (global steps x batch size, pretraining included). "train-test" (Fig. 5): test (solid) and the fixed
    training subset (dashed) against steps. "bptt" (Fig. 4): final test accuracy against the supervised BPTT
    length, one line per model, with the reference-line cells and chance as horizontal lines.
    Written to `out`, by default <root>/<experiment>.png.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    exp = get(name)
    if exp.plot == "length":
        fig, (ax, *cost) = plt.subplots(3, 1, figsize=(8, 12), gridspec_kw={"height_ratios": [3, 2, 2]})
    else:
        fig, ax = plt.subplots(figsize=(8, 6))
        cost = []
    draw = {"curves": _draw_curves, "train-test": _draw_train_test, "bptt": _draw_bptt, "length": _draw_length}
    if not draw[exp.plot](ax, collect(name, root)):
        plt.close(fig)
        return None
    if cost:
        _draw_cost(*cost, Path(root) / name / BENCH)
        ax.set_xlim(*cost[0].get_xlim())  # accuracy and cost on one T axis
    ax.axhline(CHANCE, linestyle=":", color="gray", label=f"chance ({CHANCE:.0f}%)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize=8)  # below: never over a curve
    ax.set_title(exp.title, fontsize=10)
    fig.tight_layout()
    out = Path(out) if out else Path(root) / f"{name}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _evals(folder: Path) -> list[dict]:
    from auxrnn.train.metrics import read_metrics

    return [m for m in read_metrics(folder) if m.get("kind") == "eval"]


def curve_labels(rows: list[dict]) -> list[str]:
    """A legend entry per row: the model, and its column where another cell of the figure shares the model."""
    models = [r["cell"].row for r in rows]
    return [f"{r['cell'].row}, {r['cell'].column}" if models.count(r["cell"].row) > 1 and r["cell"].column
            else r["cell"].row for r in rows]


MARKERS = "osD^vPX*"  # one shape per line, drawn larger first, so a line under another still shows


def _draw_curves(ax, rows: list[dict]) -> int:
    drawn = 0
    for r, label in zip(rows, curve_labels(rows)):
        evals, batch = _evals(r["folder"]), _batch_size(r["folder"])
        if not evals or batch is None:
            continue
        x = [m["step"] * batch for m in evals]
        line, = ax.plot(x, [m["test_acc"] for m in evals], marker=MARKERS[drawn % len(MARKERS)],
                        markersize=max(8 - 1.5 * drawn, 3), fillstyle="none" if drawn % 2 else "full", label=label)
        val = [(xi, m["val_acc"]) for xi, m in zip(x, evals) if "val_acc" in m]
        if val:
            ax.plot(*zip(*val), linestyle=":", color=line.get_color())
        drawn += 1
    if drawn:
        _draw_window_references(ax, rows)
    ax.set_xlabel("training examples (steps x batch, pretraining included)")
    ax.set_ylabel("accuracy (%): test solid, validation dotted")
    ax.set_ylim(0, 100)
    return drawn


def window_references(folder: Path) -> dict[str, float]:
    """{"linear": %, "MLP": %} from the window_probe*.txt files of a run folder (scripts/window_probe.py): what a
    classifier of the last K input steps alone reaches."""
    out = {}
    for path in sorted(Path(folder).glob("window_probe*.txt")):
        for line in path.read_text().splitlines():
            m = re.match(r"\s*(linear classifier|MLP) on the last (\d+) steps\s+([\d.]+)", line)
            if m:
                out[f"{m.group(1).split()[0]} on the last {m.group(2)} steps alone"] = float(m.group(3))
    return out


def _draw_window_references(ax, rows: list[dict]) -> None:
    """Horizontal lines at what a classifier of the window alone reaches, where a cell's folder has probed it."""
    seen = {}
    for r in rows:
        seen.update(window_references(r["folder"]))
    for i, (what, value) in enumerate(sorted(seen.items())):
        ax.axhline(value, linestyle=["--", "-."][i % 2], color="black", alpha=0.6, linewidth=1,
                   label=f"{what} ({value:.2f}, scripts/window_probe.py)")


def _draw_train_test(ax, rows: list[dict]) -> int:
    drawn = 0
    for r, label in zip(rows, curve_labels(rows)):
        evals = [m for m in _evals(r["folder"]) if "train_eval_acc" in m]
        if not evals:
            continue
        steps = [m["step"] for m in evals]
        line, = ax.plot(steps, [m["test_acc"] for m in evals], marker="o", markersize=3,
                        label=f"{label}: test")
        ax.plot(steps, [m["train_eval_acc"] for m in evals], linestyle="--", color=line.get_color(),
                label=f"{label}: train")
        drawn += 1
    ax.set_xlabel("training steps (pretraining included)")
    ax.set_ylabel("accuracy (%): test solid, fixed training subset dashed")
    ax.set_ylim(0, 100)
    return drawn


def _bptt(column: str) -> int | None:
    """"BPTT 50" -> 50, "no supervised BPTT" -> 0."""
    if column.startswith("no supervised"):
        return 0
    m = re.fullmatch(r"BPTT (\d+)", column)
    return int(m.group(1)) if m else None


def _draw_bptt(ax, rows: list[dict]) -> int:
    from auxrnn.reproduce.experiments import REFERENCE_LINE

    finished = [r for r in rows if r["summary"].get("status") == "finished"]
    lengths = sorted({k for r in rows if (k := _bptt(r["cell"].column)) is not None})
    pos = {k: i for i, k in enumerate(lengths)}  # even spacing, as in the paper's figure
    drawn = 0
    for model in dict.fromkeys(r["cell"].row for r in rows if r["cell"].column != REFERENCE_LINE):
        pts = sorted((pos[_bptt(r["cell"].column)], r["summary"]["test_accuracy"]) for r in finished
                     if r["cell"].row == model and _bptt(r["cell"].column) is not None)
        if pts:
            ax.plot(*zip(*pts), marker="o", label=model)
            drawn += 1
    for i, r in enumerate(r for r in finished if r["cell"].column == REFERENCE_LINE):
        ax.axhline(r["summary"]["test_accuracy"], linestyle=["--", "-."][i % 2], color=f"C{5 + i}",
                   label=f"{r['cell'].row} ({r['summary']['test_accuracy']:.1f})")
    ax.set_xticks(range(len(lengths)), ["none" if k == 0 else str(k) for k in lengths])
    ax.set_xlabel("supervised BPTT length (categorical axis: the lengths are evenly spaced, not to scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    return drawn


def _length(column: str) -> int | None:
    """"T=3136" -> 3136."""
    m = re.fullmatch(r"T=(\d+)", column)
    return int(m.group(1)) if m else None


# Fig. 3's panels name a method differently (cell rlstm_t300_56, bench model rlstm-1x600-cpu); both take its colour here.
_METHODS = ("rlstm", "plstm", "lstm-t300", "lstm-full", "lstm-infer", "transformer")


def _method_color(name: str) -> str | None:
    """'rlstm_t300_56' and 'rlstm-1x600-cpu' -> 'C0'; None for a method not listed (matplotlib's next colour)."""
    key = name.replace("_", "-")
    return next((f"C{i}" for i, method in enumerate(_METHODS) if key.startswith(method)), None)


def _machine(device: str | None) -> str:
    """A summary's device without its thread count: 'cpu (AMD EPYC, 1 thread)' -> 'cpu (AMD EPYC)'."""
    return re.sub(r", \d+ threads?\)$", ")", device or "unknown device")


def _draw_length(ax, rows: list[dict]) -> int:
    """Fig. 3's top panel: final test accuracy against T (log axis), one line per model; finished cells only.

    A point that ran on another machine than most of the panel's is hollow and named beside it: its floats are
    that machine's."""
    finished = [r for r in rows if r["summary"].get("status") == "finished" and _length(r["cell"].column) is not None]
    machines = Counter(_machine(r["summary"].get("device")) for r in finished)
    usual = machines.most_common(1)[0][0] if machines else None
    drawn = 0
    for model in dict.fromkeys(r["cell"].row for r in rows):
        mine = sorted((r for r in finished if r["cell"].row == model), key=lambda r: _length(r["cell"].column))
        if not mine:
            continue
        color = _method_color(mine[0]["cell"].id)
        line, = ax.plot([_length(r["cell"].column) for r in mine], [r["summary"]["test_accuracy"] for r in mine],
                        marker="o", label=model, color=color)
        drawn += 1
        for r in mine:
            if (machine := _machine(r["summary"].get("device"))) != usual:
                xy = (_length(r["cell"].column), r["summary"]["test_accuracy"])
                ax.plot(*xy, marker="o", markersize=9, markerfacecolor="white", color=line.get_color(),
                        linestyle="none", label="_another machine")
                ax.annotate(machine, xy, xytext=(-6, 8), textcoords="offset points", ha="right", fontsize=7,
                            color=line.get_color())
    if len(machines) > 1:
        ax.plot([], [], marker="o", markerfacecolor="white", color="gray", linestyle="none",
                label=f"hollow point: ran on the machine named beside it, not {usual}")
    ax.set_xscale("log")
    ax.set_xlabel("sequence length T (log axis)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    return drawn


BENCH = "bench.json"  # the cost panel's source: `auxrnn bench --json <root>/<experiment>/bench.json`


def _draw_cost(ax_time, ax_mem, path: Path) -> None:
    """Fig. 3's bottom panel from an `auxrnn bench` JSON: seconds and peak memory per step against T, per model."""
    import json

    records = json.loads(path.read_text()) if path.is_file() else []
    models = list(dict.fromkeys(r["model"] for r in records))
    unlisted = [m for m in models if _method_color(m) is None]  # after the listed methods' colours, in order
    for model in models:
        for precision in dict.fromkeys(r.get("precision", "fp32") for r in records):
            mine = sorted((r for r in records if r["model"] == model and r.get("precision", "fp32") == precision
                           and r.get("step_ms") is not None), key=lambda r: r["T"])
            if not mine:
                continue
            style = dict(marker="o", color=_method_color(model) or f"C{len(_METHODS) + unlisted.index(model)}",
                         linestyle="-" if precision == "fp32" else "--",
                         label=f"{model} ({precision})")
            ax_time.plot([r["T"] for r in mine], [r["step_ms"] / 1000 for r in mine], **style)
            ax_mem.plot([r["T"] for r in mine], [r["peak_mib"] / 1024 for r in mine], **style)
    where = (f"{records[0]['device']}, batch {records[0]['batch']}, {records[0].get('threads', '?')} thread(s)"
             if records else f"no {path.name} yet: auxrnn bench --json {path}")
    for a, what in ((ax_time, "seconds per training step"), (ax_mem, "peak memory per step (GiB)")):
        a.set_xscale("log")
        a.set_yscale("log")
        a.set_xlabel("sequence length T (log axis)")
        a.set_ylabel(what)
        a.set_title(where, fontsize=9)
        a.grid(alpha=0.3)
        if records:
            a.legend(fontsize=7, ncol=2)


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
