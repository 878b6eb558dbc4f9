"""The paper's tables and figures as lists of runs, and our numbers beside the paper's.

An experiment is a list of cells; a cell is one `auxrnn train` run: a preset plus a few overrides, in
its own run folder under the reproduce root (default `runs/reproduce/<experiment>/<cell>`). Cells that
two experiments share (Figure 4's Truncate300 points are Table 2's CIFAR-10 runs) point at one folder.
`run_experiment` trains every cell that has not finished, resuming those with a checkpoint, so the same
command can be repeated across short GPU slices until the table is complete. `collect` reads the
cells' summary.json files and `markdown_table` puts our final test accuracy beside the paper's.

Paper numbers come from ../shared/paper.md: exact where the paper prints them, "≈" where digitized
from a figure, "unknown" where no source has them.
"""
from __future__ import annotations

import logging
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from auxrnn.train.config import parse_value
from auxrnn.train.metrics import read_summary

log = logging.getLogger("auxrnn.reproduce")

DEFAULT_ROOT = Path("runs") / "reproduce"
RESULTS = Path("docs") / "results.md"


@dataclass
class Cell:
    id: str                      # unique within the experiment, used as the run folder name
    row: str                     # the row label in the paper's table / the series in its figure
    preset: str                  # configs/<preset>.yaml
    paper: str = "unknown"       # "96.4", "≈63.1", "unknown"
    overrides: dict = field(default_factory=dict)
    column: str = ""             # e.g. the sequence length of a Figure 3 point
    run: str | None = None       # shared run folder "<experiment>/<cell>" relative to the root


@dataclass
class Experiment:
    name: str
    title: str
    note: str
    cells: list[Cell]


def _table2(ds: str, title: str, paper: dict[str, str]) -> Experiment:
    rows = [("lstm_full", "LSTM Full BP"), ("lstm_t300", "LSTM Truncate300"), ("rlstm_t300", "r-LSTM Truncate300"),
            ("plstm_t300", "p-LSTM Truncate300"), ("rlstm_full", "r-LSTM Full BP"), ("plstm_full", "p-LSTM Full BP"),
            ("transformer", "Transformer")]
    return Experiment(
        f"table2-{ds}", f"Table 2, {title}: test accuracy (%)",
        "Paper rows from the v1/v2 table image; the Transformer row is arXiv v3's (cited by LSSL/S4).",
        [Cell(key, label, f"{ds}_{key}", paper[key]) for key, label in rows])


_T2 = {
    "mnist": dict(lstm_full="98.3", lstm_t300="11.3", rlstm_t300="96.4", plstm_t300="95.4", rlstm_full="98.4", plstm_full="98.0",
                  transformer="98.9"),
    "pmnist": dict(lstm_full="89.4", lstm_t300="88.8", rlstm_t300="92.8", plstm_t300="92.5", rlstm_full="95.2", plstm_full="92.8",
                   transformer="97.9"),
    "cifar10": dict(lstm_full="58.8", lstm_t300="49.0", rlstm_t300="65.9", plstm_t300="64.7", rlstm_full="72.2", plstm_full="67.6",
                    transformer="62.2"),
}

# Figure 3 (top), digitized: side -> (r-LSTM, p-LSTM, dashed r-LSTM [20x30?], LSTM, Transformer)
_F3 = {40: ("≈6.8", "≈6.5", "≈10.4", "≈3.8", "≈11.8"), 48: ("≈6.2", "≈6.8", "≈9.8", "≈2.9", "≈10.3"),
       56: ("≈5.9", "≈5.7", "≈9.0", "≈2.1", "≈6.8–7.0"), 72: ("≈4.9", "≈6.5", "≈8.9", "≈1.5", "≈4.4"),
       80: ("≈4.9", "≈4.2", "≈8.2", "≈1.9", "≈2.9"), 96: ("≈4.0", "≈4.6", "≈7.3", "≈1.1", "≈1.9"),
       112: ("≈3.4", "≈3.0", "≈5.0", "≈1.1", "no point"), 128: ("≈3.7", "≈2.1", "≈4.9", "no point", "no point")}


def _figure3() -> Experiment:
    series = [("rlstm", "r-LSTM"), ("plstm", "p-LSTM"), ("rlstm_20x30", "r-LSTM 20x30"), ("lstm", "LSTM"),
              ("transformer", "Transformer")]
    cells = []
    for i, (key, label) in enumerate(series):
        for side, paper in _F3.items():
            value = paper[i] + (" (dashed line, unverified)" if key == "rlstm_20x30" else "")
            cells.append(Cell(f"{key}-{side}", label, f"dogs_{key}", value, {"data.options.side": side},
                              column=f"T={side * side}"))
    return Experiment("figure3", "Figure 3, StanfordDogs: test accuracy (%) against sequence length",
                      "Lengths 40..128 squared (inferred from the digitized x positions); chance is 0.83%.", cells)


_F4 = {"rlstm": ("r-LSTM", {300: "65.9", 200: "≈63.1", 100: "≈60.6", 50: "≈57.6", 1: "≈46.1", 0: "≈37.5"}),
       "plstm": ("p-LSTM", {300: "64.7", 200: "≈62", 100: "≈60.5", 50: "≈58.5–59", 1: "≈47", 0: "≈34.7"})}


def _figure4() -> Experiment:
    cells = [Cell("lstm_full", "LSTM Full BP (reference line)", "cifar10_lstm_full", "58.8", run="table2-cifar10/lstm_full")]
    for key, (label, points) in _F4.items():
        for k, paper in points.items():
            if k == 300:
                cells.append(Cell(f"{key}_t300", label, f"cifar10_{key}_t300", paper, column="BPTT 300",
                                  run=f"table2-cifar10/{key}_t300"))
            else:
                cells.append(Cell(f"{key}_t{k}", label, f"cifar10_{key}_t{k}", paper,
                                  column="no supervised BPTT" if k == 0 else f"BPTT {k}"))
    return Experiment("figure4", "Figure 4, CIFAR-10: shrinking the supervised BPTT length, test accuracy (%)",
                      "Truncate300 points are the Table 2 runs; values below 300 are digitized (±0.3).", cells)


def _ablation(name: str, title: str, items: list[tuple[str, str, str]]) -> Experiment:
    cells = []
    for cid, label, preset in items:
        shared = "table2-mnist/rlstm_t300" if preset == "mnist_rlstm_t300" else None
        cells.append(Cell(cid, label, preset, "unknown", run=shared))
    return Experiment(name, title, "MNIST, r-LSTM Truncate300; the paper's numbers are not available.", cells)


EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in [
    _table2("mnist", "sequential MNIST", _T2["mnist"]),
    _table2("pmnist", "permuted MNIST", _T2["pmnist"]),
    _table2("cifar10", "sequential CIFAR-10", _T2["cifar10"]),
    _figure3(),
    _figure4(),
    Experiment("dbpedia", "DBpedia, character level: test accuracy (%)",
               "The paper's DBpedia numbers were not found in any reachable source.",
               [Cell("rlstm", "r-LSTM", "dbpedia_rlstm"), Cell("plstm", "p-LSTM", "dbpedia_plstm"),
                Cell("lstm", "LSTM", "dbpedia_lstm"), Cell("sa_lstm", "SA-LSTM", "dbpedia_sa_lstm"),
                Cell("lm_lstm", "LM-LSTM", "dbpedia_lm_lstm")]),
    _ablation("ablation-anchors", "Anchors x subsequence length at a fixed 600-step budget",
              [("1x600", "1 x 600", "mnist_rlstm_t300"), ("2x300", "2 x 300", "mnist_rlstm_t300_2x300"),
               ("4x150", "4 x 150", "mnist_rlstm_t300_4x150"), ("20x30", "20 x 30", "mnist_rlstm_t300_20x30")]),
    _ablation("ablation-subseq", "Subsequence length, one anchor",
              [("1x100", "1 x 100", "mnist_rlstm_t300_1x100"), ("1x300", "1 x 300", "mnist_rlstm_t300_1x300"),
               ("1x600", "1 x 600", "mnist_rlstm_t300")]),
    _ablation("ablation-weight", "Auxiliary loss weight",
              [("w0.1", "aux_weight 0.1", "mnist_rlstm_t300_w0p1"), ("w1", "aux_weight 1", "mnist_rlstm_t300"),
               ("w10", "aux_weight 10", "mnist_rlstm_t300_w10")]),
    Experiment("default", "The default job (configs/default.yaml): a few minutes on a CPU",
               "A smoke test of the whole pipeline on real MNIST, not a paper number.",
               [Cell("default", "r-LSTM (small)", "default", "unknown")]),
]}


def get(name: str) -> Experiment:
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose one of {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]


def select(exp: Experiment, cells: list[str] | None) -> list[Cell]:
    """The cells named in `cells` (ids or shell-style globs), all when None; unknown names are an error."""
    if not cells:
        return list(exp.cells)
    import fnmatch

    chosen = []
    for pattern in cells:
        hits = [c for c in exp.cells if fnmatch.fnmatchcase(c.id, pattern)]
        if not hits:
            raise ValueError(f"experiment {exp.name!r} has no cell {pattern!r}; cells: {', '.join(c.id for c in exp.cells)}")
        chosen += [c for c in hits if c not in chosen]
    return chosen


def select_any(exp: Experiment, cells: list[str] | None, exps: list[Experiment]) -> list[Cell]:
    """select() over several experiments: a pattern must match a cell of at least one of them."""
    if not cells or len(exps) == 1:
        return select(exp, cells)
    import fnmatch

    for pattern in cells:
        if not any(fnmatch.fnmatchcase(c.id, pattern) for e in exps for c in e.cells):
            raise ValueError(f"no cell {pattern!r} in experiments {', '.join(e.name for e in exps)}")
    return [c for c in exp.cells if any(fnmatch.fnmatchcase(c.id, p) for p in cells)]


def cell_dir(exp: Experiment, cell: Cell, root: Path = DEFAULT_ROOT) -> Path:
    return Path(root) / (cell.run or f"{exp.name}/{cell.id}")


def _fmt(key: str, value) -> str:
    return f"{key}={value}"


def cell_overrides(exp: Experiment, cell: Cell, root: Path, extra: dict | None = None) -> dict:
    out = dict(cell.overrides)
    out.update(extra or {})
    out["train.out"] = str(cell_dir(exp, cell, root))
    return out


def cell_command(exp: Experiment, cell: Cell, root: Path = DEFAULT_ROOT, extra: dict | None = None) -> str:
    """The exact `auxrnn train` command of a cell (the first slice; later slices add --resume)."""
    args = ["auxrnn", "train", "--preset", cell.preset]
    args += [_fmt(k, v) for k, v in cell_overrides(exp, cell, root, extra).items()]
    return shlex.join(args)


DONE = ("finished", "oom")  # a cell with either result is not run again (oom: unless retry_oom)


def _is_done(summary: dict | None, retry_oom: bool = False) -> bool:
    status = (summary or {}).get("status")
    return status == "finished" or (status == "oom" and not retry_oom)


def _has_run(folder: Path) -> bool:
    return (folder / "checkpoints" / "last.pt").exists() or (folder / "config.yaml").exists()


def _resumable(extra: dict | None) -> dict:
    from auxrnn.train.runs import RESUMABLE_KEYS

    return {k: v for k, v in (extra or {}).items() if k in RESUMABLE_KEYS}


def _skip_record(exp: Experiment, cell: Cell, summary: dict) -> dict:
    if summary["status"] == "finished":
        log.info("[%s/%s] finished earlier: %.2f%%", exp.name, cell.id, summary["test_accuracy"])
    else:
        log.info("[%s/%s] ran out of memory earlier (%s); --retry-oom tries again", exp.name, cell.id,
                 summary.get("message", ""))
    return {"cell": cell.id, "experiment": exp.name, "status": summary["status"]}


def run_experiment(name: str, cells: list[str] | None = None, root: Path = DEFAULT_ROOT,
                   extra: dict | None = None, progress: bool | None = None, *, parallel: int = 1,
                   retry_oom: bool = False) -> list[dict]:
    """Train or resume every selected cell that has not finished; returns one record per cell.

    A cell that runs out of memory gets status "oom" (its summary.json says so) and the next cell runs;
    it is not run again unless `retry_oom`. Sequentially (parallel=1), stops early (returning what it
    has) when a cell is stopped by a signal or its time budget; with parallel > 1 see run_parallel.
    """
    exp = get(name)
    chosen = select(exp, cells)
    if parallel > 1:
        return run_parallel([(exp, c) for c in chosen], root, extra, parallel, retry_oom=retry_oom)
    from auxrnn.baselines import free_memory, is_oom
    from auxrnn.train import loop
    from auxrnn.train.runs import new_run, resume_config

    records = []
    for cell in chosen:
        folder = cell_dir(exp, cell, root)
        summary = read_summary(folder)
        if _is_done(summary, retry_oom):
            records.append(_skip_record(exp, cell, summary))
            continue
        if _has_run(folder):
            cfg = resume_config(folder, _resumable(extra))
            log.info("[%s/%s] resuming %s", exp.name, cell.id, folder)
        else:
            cfg, folder = new_run(cell.preset, cell_overrides(exp, cell, root, extra))
            log.info("[%s/%s] %s", exp.name, cell.id, cell_command(exp, cell, root, extra))
        oom = None
        try:
            summary = loop.train(cfg, folder, resume=True, progress=progress)
        except loop.NonFiniteLoss as exc:
            log.error("[%s/%s] %s", exp.name, cell.id, exc)
            records.append({"cell": cell.id, "experiment": exp.name, "status": "non_finite"})
            continue
        except Exception as exc:  # noqa: BLE001 - only an out-of-memory is a result; the rest propagates
            if not is_oom(exc):
                raise
            oom = exc
        if oom is not None:
            if (read_summary(folder) or {}).get("status") != "oom":
                loop.record_oom(folder, oom, cfg)
            del oom
            free_memory()
            log.error("[%s/%s] out of memory: recorded as the cell's result; going on with the next cell",
                      exp.name, cell.id)
            records.append({"cell": cell.id, "experiment": exp.name, "status": "oom"})
            continue
        records.append({"cell": cell.id, "experiment": exp.name, "status": summary["status"]})
        if summary["status"] in ("signal", "time_budget"):
            break
    return records


def child_command(exp: Experiment, cell: Cell, root: Path = DEFAULT_ROOT, extra: dict | None = None) -> list[str]:
    """argv of the `auxrnn train` subprocess of a cell: --resume FOLDER when it has a run, else its command."""
    folder = cell_dir(exp, cell, root)
    argv = [sys.executable, "-m", "auxrnn", "train", "--no-progress"]
    if _has_run(folder):
        return argv + ["--resume", str(folder)] + [_fmt(k, v) for k, v in _resumable(extra).items()]
    return argv + ["--preset", cell.preset] + [_fmt(k, v) for k, v in cell_overrides(exp, cell, root, extra).items()]


def run_parallel(cells: list[tuple[Experiment, Cell]], root: Path = DEFAULT_ROOT, extra: dict | None = None,
                 parallel: int = 2, *, retry_oom: bool = False, poll: float = 0.2) -> list[dict]:
    """Run up to `parallel` unfinished cells at once, each as its own `auxrnn train` subprocess.

    Each child writes its output to <cell folder>/stdout.log (appended: one log across slices). Cells that two
    experiments share run once. SIGINT/SIGTERM to this process sends SIGTERM to every running child (each
    stops with a checkpoint) and starts no further cell. Returns one record per cell, its status read from
    the cell's summary.json ("failed" when a child exited without one, e.g. a config error).
    """
    records: list[dict] = []
    queue: list[tuple[Experiment, Cell, Path]] = []
    seen: set[Path] = set()
    for exp, cell in cells:
        folder = cell_dir(exp, cell, root)
        if folder.resolve() in seen:
            continue
        seen.add(folder.resolve())
        summary = read_summary(folder)
        if _is_done(summary, retry_oom):
            records.append(_skip_record(exp, cell, summary))
        else:
            if summary and summary.get("status") == "oom":  # retrying: the old result must not count
                (folder / "summary.json").unlink()
            queue.append((exp, cell, folder))
    running: list[tuple[Experiment, Cell, Path, subprocess.Popen, object]] = []
    stop = {"signum": 0}

    def forward(signum, frame):
        stop["signum"] = signum
        log.warning("received %s: sending SIGTERM to %d running cell(s); they stop with a checkpoint",
                    signal.Signals(signum).name, len(running))
        for *_, proc, _ in running:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    old = {}
    if threading.current_thread() is threading.main_thread():
        for s in (signal.SIGINT, signal.SIGTERM):
            old[s] = signal.signal(s, forward)
    exit_codes: dict[Path, int] = {}
    try:
        while queue or running:
            while queue and len(running) < parallel and not stop["signum"]:
                exp, cell, folder = queue.pop(0)
                folder.mkdir(parents=True, exist_ok=True)
                argv = child_command(exp, cell, root, extra)
                logf = open(folder / "stdout.log", "ab")
                logf.write(f"$ {shlex.join(argv)}\n".encode())
                logf.flush()
                log.info("[%s/%s] started (%d running): %s > %s", exp.name, cell.id, len(running) + 1,
                         shlex.join(argv[2:]), folder / "stdout.log")
                proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True)  # a terminal's Ctrl-C reaches the parent only
                running.append((exp, cell, folder, proc, logf))
            if stop["signum"] and queue:
                for exp, cell, folder in queue:
                    records.append({"cell": cell.id, "experiment": exp.name, "status": "not started"})
                queue.clear()
            for item in list(running):
                exp, cell, folder, proc, logf = item
                rc = proc.poll()
                if rc is None:
                    continue
                running.remove(item)
                logf.close()
                exit_codes[folder] = rc
                status = (read_summary(folder) or {}).get("status", "failed")
                if rc != 0 and status not in ("signal", "oom", "non_finite"):
                    status = "failed"  # e.g. a refused config: see stdout.log
                if rc == 0 and status not in ("finished", "until_step", "time_budget"):
                    status = "failed"
                log.info("[%s/%s] exited %d: %s (log %s)", exp.name, cell.id, rc, status, folder / "stdout.log")
                records.append({"cell": cell.id, "experiment": exp.name, "status": status, "returncode": rc})
            if running:
                time.sleep(poll)
    finally:
        for *_, proc, logf in running:  # only on an error in this loop: do not leave children behind
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait()
            logf.close()
        for s, h in old.items():
            signal.signal(s, h)
    return records


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
    """Our final test accuracy beside the paper's, with the command, seed, device, epochs and wall time."""
    exp = get(name)
    lines = [f"### {exp.title}", "", exp.note, "",
             "| cell | model | setting | ours | paper | status | epochs | wall time | device | seed | command |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in collect(name, root):
        cell, s = r["cell"], r["summary"]
        acc = s.get("test_accuracy")
        ours = f"{acc:.2f}" if isinstance(acc, (int, float)) and s.get("status") == "finished" else "–"
        status = s.get("status", "not run")
        if status not in ("finished", "not run", "oom"):
            status = f"{status} at step {s.get('steps', '?')}"
        epochs = f"{s['epochs']:.1f}" if isinstance(s.get("epochs"), (int, float)) else "–"
        lines.append(
            f"| {cell.id} | {cell.row} | {cell.column or '–'} | {ours} | {cell.paper} | {status} | {epochs} | "
            f"{_wall(s.get('wall_seconds'))} | {s.get('device', '–')} | {s.get('seed', '–')} | "
            f"`{cell_command(exp, cell, root)}` |")
    return "\n".join(lines) + "\n"


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


def parse_extra(items: list[str]) -> dict:
    from auxrnn.train.config import parse_overrides

    return parse_overrides(items)


__all__ = ["EXPERIMENTS", "Cell", "Experiment", "cell_command", "cell_dir", "child_command", "collect", "get",
           "markdown_table", "parse_value", "run_experiment", "run_parallel", "select", "update_results"]
