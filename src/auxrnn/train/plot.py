"""Loss and accuracy curves of a run, from its metrics.jsonl, as a PNG (matplotlib, Agg backend).

`AUXRNN_PLOT=0` in the environment skips the drawing (the test suite sets it: a figure costs more than a
tiny run); metrics.jsonl holds every number of the figure either way.
"""
from __future__ import annotations

import os
from pathlib import Path

from auxrnn.train.metrics import read_metrics

CURVES = "curves.png"


def plotting_on() -> bool:
    return os.environ.get("AUXRNN_PLOT", "1").strip().lower() not in ("0", "false", "no", "off")


def plain_log_labels(axis) -> None:
    """Label a log axis 0.3, 3, 30 rather than 3×10⁻¹, 3×10⁰: a loss axis often spans less than a decade,
    where matplotlib labels the minor ticks in scientific notation."""
    from matplotlib.ticker import LogFormatter

    class Plain(LogFormatter):
        def _num_to_string(self, x, vmin, vmax):  # the one hook LogFormatter offers for the text of a tick
            return f"{x:g}"

    axis.set_major_formatter(Plain(10))
    axis.set_minor_formatter(Plain(10, labelOnlyBase=False))  # matplotlib's own choice of which to label


def plot_run(run_dir: Path, out: Path | None = None) -> Path | None:
    """Write RUN/curves.png: losses (left) and accuracies (right) against the step. None if there are no
    metrics or plotting is off (AUXRNN_PLOT=0)."""
    if not plotting_on():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(run_dir)
    train = [r for r in records if r.get("kind") == "train"]
    evals = [r for r in records if r.get("kind") == "eval"]
    if not train and not evals:
        return None
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for key, label in (("loss", "total loss"), ("sup_loss", "supervised"), ("aux_loss", "auxiliary")):
        pts = [(r["step"], r[key]) for r in train if isinstance(r.get(key), (int, float))]
        if pts:
            ax_loss.plot(*zip(*pts), label=label)
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("loss")
    ax_loss.set_yscale("log")
    plain_log_labels(ax_loss.yaxis)
    pts = [(r["step"], r["train_acc"]) for r in train if isinstance(r.get("train_acc"), (int, float))]
    if pts:
        ax_acc.plot(*zip(*pts), label="train (running)", alpha=0.6)
    for key, label in (("val_acc", "validation"), ("test_acc", "test")):
        pts = [(r["step"], r[key]) for r in evals if isinstance(r.get(key), (int, float))]
        if pts:
            ax_acc.plot(*zip(*pts), marker="o", label=label)
    ax_acc.set_xlabel("step")
    ax_acc.set_ylabel("accuracy (%)")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.suptitle(Path(run_dir).name)
    fig.tight_layout()
    out = Path(out) if out else Path(run_dir) / CURVES
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
