"""Run folders: where a new run goes, how a stopped one is picked up again.

    RUN/config.yaml          the resolved config (the source of truth on resume)
    RUN/metrics.jsonl        one JSON line per log interval / evaluation / event
    RUN/tensorboard/         TensorBoard event files
    RUN/checkpoints/last.pt  the latest checkpoint (written atomically)
    RUN/summary.json         status, test_accuracy, steps, epochs, wall_seconds, device, ...
    RUN/curves.png           loss and accuracy curves
"""
from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any

import yaml

from auxrnn.train import checkpoint
from auxrnn.train.config import RunConfig, build_config, from_dict, set_key, validate
from auxrnn.train.loop import CONFIG_FILE

# Keys that may change when a run is resumed; everything else is fixed by the run's config.yaml
# (changing e.g. the model or the seed would make the resumed run a different run).
RESUMABLE_KEYS = ("train.device", "train.max_minutes", "train.eval_every", "train.log_every",
                  "train.checkpoint_every", "train.epochs", "train.steps", "train.tensorboard", "train.threads",
                  "data.workers", "data.eval_batch_size", "data.root")


def default_run_dir(cfg: RunConfig) -> Path:
    if cfg.train.out:
        return Path(cfg.train.out)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError("set train.out=RUN_DIR when launching with torchrun: every process must agree on the folder")
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.preset}-{stamp}"


def elastic_restart() -> int:
    """How often torchrun has restarted this job after a failure (TORCHELASTIC_RESTART_COUNT; 0 without torchrun)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)


def _restarted_job_of(run_dir: Path) -> bool:
    """Whether this is a torchrun restart (`--max-restarts K`) of the job that wrote run_dir's checkpoint:
    its checkpoint names this job's TORCHELASTIC_RUN_ID (a restart of another job's folder is refused)."""
    if elastic_restart() <= 0:
        return False
    ckpt, _ = checkpoint.resume_point(run_dir)
    return ckpt is not None and ckpt.get("elastic_run_id") == os.environ.get("TORCHELASTIC_RUN_ID")


def new_run(preset: str | None, overrides: dict[str, Any]) -> tuple[RunConfig, Path]:
    """Config and folder of a fresh run; refuses a folder that already holds a checkpoint, except the job's
    own after a torchrun restart (the caller then resumes it: `elastic_restart`)."""
    cfg = build_config(preset, overrides)
    run_dir = default_run_dir(cfg)
    cfg.train.out = str(run_dir)
    if (run_dir / "checkpoints" / "last.pt").exists() and not _restarted_job_of(run_dir):
        raise ValueError(f"run folder {run_dir} already holds a checkpoint: continue it with "
                         f"`auxrnn train --resume {run_dir}` or choose another train.out")
    return cfg, run_dir


def resume_config(run_dir: Path, overrides: dict[str, Any]) -> RunConfig:
    """The saved config of `run_dir`, with the few overrides a resume allows."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        raise FileNotFoundError(f"{run_dir} is not a run folder: no {CONFIG_FILE}")
    cfg = from_dict(yaml.safe_load(path.read_text()))
    for key, value in overrides.items():
        if key not in RESUMABLE_KEYS:
            raise ValueError(f"{key} cannot change when resuming (it would make a different run); keys that may: "
                             f"{', '.join(RESUMABLE_KEYS)}")
        set_key(cfg, key, value)
    cfg.train.out = str(run_dir)
    return validate(cfg)
