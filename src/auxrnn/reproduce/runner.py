"""Running an experiment's cells: in this process one after another, or as `auxrnn train` subprocesses.

`run_experiment` trains every cell that has not finished, resuming those with a checkpoint, so the same
command can be repeated across short GPU slices until the table is complete.
"""
from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from auxrnn.reproduce.experiments import Cell, Experiment, get, select
from auxrnn.train.cpu import choose_threads
from auxrnn.train.metrics import read_summary

log = logging.getLogger("auxrnn.reproduce")

DEFAULT_ROOT = Path("runs") / "reproduce"


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


DONE = ("finished", "oom")  # a cell with either result is not run again (oom: unless retry_oom; decision T21)


def _is_done(summary: dict | None, retry_oom: bool = False, cell: Cell | None = None) -> bool:
    """Whether a cell has its result: finished, out of memory (unless retried), or stopped at its `until_step`."""
    status = (summary or {}).get("status")
    stopped = (cell is not None and cell.until_step is not None and status == "until_step"
               and summary.get("steps", 0) >= cell.until_step)
    return status == "finished" or stopped or (status == "oom" and not retry_oom)


def _has_run(folder: Path) -> bool:
    return (folder / "checkpoints" / "last.pt").exists() or (folder / "config.yaml").exists()


def _resumable(extra: dict | None) -> dict:
    from auxrnn.train.runs import RESUMABLE_KEYS

    return {k: v for k, v in (extra or {}).items() if k in RESUMABLE_KEYS}


def _skip_record(exp: Experiment, cell: Cell, summary: dict) -> dict:
    if summary["status"] == "until_step":
        log.info("[%s/%s] stopped at its step %d earlier", exp.name, cell.id, summary["steps"])
    elif summary["status"] == "finished":
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
    it is not run again unless `retry_oom` (decision T21). Sequentially (parallel=1), stops early (returning what it
    has) when a cell is stopped by a signal or its time budget; with parallel > 1 see run_parallel.
    """
    exp = get(name)
    chosen = select(exp, cells)
    if parallel > 1:
        return run_parallel([(exp, c) for c in chosen], root, extra, parallel, retry_oom=retry_oom)
    from auxrnn.memory import free_memory, is_oom
    from auxrnn.train import loop
    from auxrnn.train.runs import new_run, resume_config

    records = []
    for cell in chosen:
        folder = cell_dir(exp, cell, root)
        summary = read_summary(folder)
        if _is_done(summary, retry_oom, cell):
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
            summary = loop.train(cfg, folder, resume=True, progress=progress, until_step=cell.until_step)
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
    if cell.until_step is not None:
        argv += ["--until-step", str(cell.until_step)]
    if _has_run(folder):
        return argv + ["--resume", str(folder)] + [_fmt(k, v) for k, v in _resumable(extra).items()]
    return argv + ["--preset", cell.preset] + [_fmt(k, v) for k, v in cell_overrides(exp, cell, root, extra).items()]


def visible_gpus() -> list[str]:
    """The GPUs this process may give its children, as CUDA_VISIBLE_DEVICES names them: this process's own
    CUDA_VISIBLE_DEVICES entries when it has one (a child's value is read against the whole machine),
    else 0 .. torch.cuda.device_count() - 1."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def _cell_device(exp: Experiment, cell: Cell, folder: Path, root: Path, extra: dict) -> str:
    """train.device the cell's child will use: --device, else its saved config (a resume), else its preset."""
    if "train.device" in extra:
        return str(extra["train.device"])
    from auxrnn.train.config import build_config
    from auxrnn.train.runs import resume_config

    if (folder / "config.yaml").exists():
        return resume_config(folder, {}).train.device
    return build_config(cell.preset, cell_overrides(exp, cell, root, extra)).train.device


def gpu_for(device: str, order: int, gpus: list[str]) -> str | None:
    """The GPU (a CUDA_VISIBLE_DEVICES entry) of the `order`-th GPU cell started, round-robin over `gpus`;
    None for a CPU cell, a cell pinned to cuda:N, or no GPU at all."""
    if not gpus or device == "cpu" or device.startswith("cuda:"):
        return None
    return gpus[order % len(gpus)]


def run_parallel(cells: list[tuple[Experiment, Cell]], root: Path = DEFAULT_ROOT, extra: dict | None = None,
                 parallel: int = 2, *, retry_oom: bool = False, poll: float = 0.2,
                 gpus: list[str] | None = None) -> list[dict]:
    """Run up to `parallel` unfinished cells at once, each as its own `auxrnn train` subprocess.

    Each child writes its output to <cell folder>/stdout.log (appended: one log across slices). Cells that two
    experiments share run once. SIGINT/SIGTERM to this process sends SIGTERM to every running child (each
    stops with a checkpoint) and starts no further cell. Returns one record per cell, its status read from
    the cell's summary.json ("failed" when a child exited without one, e.g. a config error).

    GPU cells (train.device auto or cuda) are spread round-robin over `gpus` (default `visible_gpus()`):
    each child sees one GPU through CUDA_VISIBLE_DEVICES and uses it as cuda:0. CPU cells and cells pinned
    to cuda:N are started as they are; so is every cell on a machine without a GPU.
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
        if _is_done(summary, retry_oom, cell):
            records.append(_skip_record(exp, cell, summary))
        else:
            if summary and summary.get("status") == "oom":  # retrying: the old result must not count
                (folder / "summary.json").unlink()
            queue.append((exp, cell, folder))
    extra = dict(extra or {})
    if "train.threads" not in extra:  # each child its share of the cores (OMP_NUM_THREADS, if set, still wins)
        extra["train.threads"] = choose_threads(0, processes=min(parallel, max(len(queue), 1)))[0]
    gpus = visible_gpus() if gpus is None else list(gpus)
    started_on_gpu = 0
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
                gpu = gpu_for(_cell_device(exp, cell, folder, root, extra), started_on_gpu, gpus) if gpus else None
                env = None
                if gpu is not None:
                    started_on_gpu += 1
                    env = {**os.environ, "CUDA_VISIBLE_DEVICES": gpu}
                where = "" if gpu is None else f"CUDA_VISIBLE_DEVICES={gpu} "
                logf = open(folder / "stdout.log", "ab")
                logf.write(f"$ {where}{shlex.join(argv)}\n".encode())
                logf.flush()
                log.info("[%s/%s] started (%d running): %s%s > %s", exp.name, cell.id, len(running) + 1, where,
                         shlex.join(argv[2:]), folder / "stdout.log")
                proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True, env=env)  # a terminal's Ctrl-C reaches the parent only
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
