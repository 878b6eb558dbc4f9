"""Plain LSTM against r-LSTM on tokens against r-LSTM on real values, on ACSF1 (docs/arrays.md, "Comparison").

Two stages, every run an `auxrnn train` subprocess with one thread (the cells runner of `auxrnn reproduce`):

1. **Selection on validation.** Each method trains once (seed 0) per point of its small grid with 20 of the
   100 training series held out (`data.val_size=20`); the point with the highest validation accuracy at the
   end wins (ties: the first in grid order). The test split is not read for this.
2. **Test.** The chosen settings train on all 100 training series with seeds 0, 1, 2; the report gives test
   accuracy as mean ± sd (sample sd) over the seeds.

Every method gets the same budget: the same main network (LSTM-128, Truncate300) and the same number of
optimizer updates of 20 series (the r-LSTMs spend 100 of them on auxiliary-only pretraining).

    python examples/arrays/prepare_acsf1.py data/acsf1
    python examples/arrays/compare_acsf1.py data/acsf1 runs/acsf1-compare     # RUNS/report.json and report.md

Finished runs are reused and interrupted ones resumed, so the command can be run again after a stop.
"""
from __future__ import annotations

import argparse
import itertools
import json
import logging
import statistics
import sys
from pathlib import Path

COMMON = {"data.name": "arrays", "data.batch_size": 20, "data.eval_batch_size": 100, "model.hidden": 128,
          "model.embed_dim": 64, "model.aux_hidden": 128, "model.aux_layers": 1, "model.truncate": 300,
          "optim.schedule": "cosine", "optim.min_lr": 0.05, "train.log_every": 100, "train.eval_every": 0,
          "train.tensorboard": "false", "train.checkpoint_every": 250}
TOKENS = {"model.encoder": "embedding"}
VALUES = {"model.encoder": "linear", "data.options.quantiser": "none"}
UPDATES, PRETRAIN = 1100, 100  # optimizer updates of every run; the r-LSTMs' auxiliary-only pretraining
LRS = (1e-3, 3e-3)
SUBSEQ = (100, 200)  # the r-LSTMs' subsequence length L (and auxiliary truncation)


def methods(updates: int, pretrain: int) -> dict[str, list[dict]]:
    """method -> its grid: every point a dict of config keys (the budget included)."""
    lstm = [{**inp, "model.aux": "none", "optim.lr": lr, "train.steps": updates}
            for inp, lr in itertools.product((TOKENS, VALUES), LRS)]

    def rlstm(inp, aux):
        return [{**inp, "model.aux": aux, "optim.lr": lr, "model.subseq_len": L, "model.aux_truncate": L,
                 "train.pretrain_steps": pretrain, "train.steps": updates - pretrain}
                for lr, L in itertools.product(LRS, SUBSEQ)]

    return {"lstm": lstm, "rlstm_tokens": rlstm(TOKENS, "reconstruct"),
            "rlstm_values": rlstm(VALUES, "reconstruct_values")}


def describe(point: dict) -> str:
    """The settings of a grid point that vary, as one short string."""
    parts = ["values" if point.get("model.encoder") == "linear" else "tokens", f"lr {point['optim.lr']:g}"]
    if "model.subseq_len" in point:
        parts.append(f"L {point['model.subseq_len']}")
    return ", ".join(parts)


def run_stage(name: str, runs: dict[str, dict], root: Path, jobs: int) -> dict[str, dict]:
    """Train every run {id: config keys} of a stage as a cell of auxrnn.reproduce (one `auxrnn train`
    subprocess each, one thread, `jobs` at once; finished runs reused, interrupted ones resumed) in
    ROOT/NAME/ID; returns {id: its summary.json}."""
    from auxrnn import reproduce
    from auxrnn.train.metrics import read_summary

    exp = reproduce.Experiment(name, name, "", [reproduce.Cell(rid, rid, "none", overrides=keys)
                                                for rid, keys in runs.items()])
    reproduce.run_parallel([(exp, c) for c in exp.cells], root, {"train.threads": 1}, jobs)
    summaries = {c.id: read_summary(reproduce.cell_dir(exp, c, root)) for c in exp.cells}
    failed = [rid for rid, s in summaries.items() if (s or {}).get("status") != "finished"]
    if failed:
        raise SystemExit(f"not finished: {', '.join(failed)} (see stdout.log in {root / name}/<run>)")
    return summaries


LABELS = {"lstm": "plain LSTM", "rlstm_tokens": "r-LSTM, quantised tokens", "rlstm_values": "r-LSTM, real values"}


def markdown(report: dict) -> str:
    """The report as two Markdown tables: the test result per method, then every grid point's validation."""
    rows = ["| method | settings chosen on validation | test accuracy, mean ± sd (%) | per seed "
            "| parameters (main + aux) | wall time per run |", "|---|---|---|---|---|---|"]
    for m, e in report["methods"].items():
        seeds = " / ".join(f"{a:.0f}" for a in e["test_accuracy"])
        wall = statistics.mean(e["wall_seconds"])
        rows.append(f"| {LABELS.get(m, m)} | {e['chosen']} | **{e['mean']:.1f} ± {e['sd']:.1f}** | {seeds} | "
                    f"{e['parameters']['main']:,} + {e['parameters']['auxiliary']:,} | {wall:.0f} s |")
    rows += ["", "| method | grid point | validation accuracy (%) |", "|---|---|---|"]
    for m, e in report["methods"].items():
        rows += [f"| {LABELS.get(m, m)} | {g['settings']} | {g['val_accuracy']:.0f} |" for g in e["grid"]]
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", type=Path, help="folder written by prepare_acsf1.py")
    ap.add_argument("runs", type=Path, help="folder for the runs (one subfolder each)")
    ap.add_argument("--report", type=Path,
                    help="JSON file for the results (default RUNS/report.json; the tables beside it as .md)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--val-size", type=int, default=20)
    ap.add_argument("--updates", type=int, default=UPDATES, help="optimizer updates of every run")
    ap.add_argument("--pretrain", type=int, default=PRETRAIN, help="of those, the r-LSTMs' pretraining")
    ap.add_argument("--jobs", type=int, default=1, help="runs at once, one thread each")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="more config for every run")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # a line per run started or reused
    if not 0 < args.pretrain < args.updates:
        ap.error(f"--pretrain must be in 1..{args.updates - 1}")
    extra = dict(kv.split("=", 1) for kv in args.set)
    grid = methods(args.updates, args.pretrain)

    def keys(point: dict, more: dict) -> dict:
        return {**COMMON, **point, **extra, **more, "data.options.path": str(args.data)}

    select = {f"{m}_{i}": (m, p) for m, points in grid.items() for i, p in enumerate(points)}
    sums = run_stage("select", {rid: keys(p, {"data.val_size": args.val_size, "train.seed": 0})
                                for rid, (m, p) in select.items()}, args.runs, args.jobs)
    batch = int({**COMMON, **extra}["data.batch_size"])
    report: dict = {"budget": {"updates": args.updates, "pretrain_rlstm": args.pretrain, "batch": batch},
                    "val_size": args.val_size, "seeds": args.seeds, "methods": {}}
    chosen = {}
    for rid, (m, p) in select.items():
        s = sums[rid]
        entry = report["methods"].setdefault(m, {"grid": []})
        entry["grid"].append({"settings": describe(p), "val_accuracy": s["val_accuracy"]})
        if m not in chosen or s["val_accuracy"] > chosen[m][1]:
            chosen[m] = (p, s["val_accuracy"])
    finals = {f"{m}_seed{seed}": (m, seed) for m in grid for seed in args.seeds}
    sums = run_stage("test", {rid: keys(chosen[m][0], {"train.seed": seed}) for rid, (m, seed) in finals.items()},
                     args.runs, args.jobs)
    for rid, (m, seed) in finals.items():
        s = sums[rid]
        entry = report["methods"][m]
        entry["chosen"] = describe(chosen[m][0])
        entry.setdefault("test_accuracy", []).append(s["test_accuracy"])
        entry.setdefault("wall_seconds", []).append(round(s["wall_seconds"], 1))
        entry["parameters"] = s["parameters"]
    for m, entry in report["methods"].items():
        acc = entry["test_accuracy"]
        entry["mean"] = statistics.mean(acc)
        entry["sd"] = statistics.stdev(acc) if len(acc) > 1 else 0.0
        print(f"{m:13s} {entry['chosen']:22s} test {entry['mean']:.1f} ± {entry['sd']:.1f} % "
              f"(seeds {', '.join(f'{a:.0f}' for a in acc)})")
    out = args.report or args.runs / "report.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(report))
    print(f"report: {out} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
