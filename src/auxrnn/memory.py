"""Out-of-memory as a result, not a crash: one test of what counts as an OOM, and the guards built on it.

    is_oom(exc)                     CUDA OOM, MemoryError, or a RuntimeError saying so (CPU allocator too)
    run_guarded(fn, *a, **kw)       (fn(...), None) or (None, "OutOfMemoryError: ...")
    sweep_lengths(make_and_run, Ts) one row per length, "ok" / "oom" / "skipped"

Used by `auxrnn bench`, the training loop (an OOM run writes its summary) and `auxrnn reproduce`.
"""
from __future__ import annotations

import gc
from typing import Any, Callable, Iterable

import torch

_OOM_MARKERS = ("out of memory", "can't allocate memory")


def is_oom(exc: BaseException) -> bool:
    """CUDA out-of-memory, a RuntimeError saying "out of memory", or a CPU allocation failure."""
    if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc).lower() for m in _OOM_MARKERS)


def free_memory() -> None:
    """Collect garbage and hand cached CUDA blocks back (after an OOM, once its exception is gone)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_guarded(fn: Callable, *args, **kwargs) -> tuple[Any, str | None]:
    """(fn(*args, **kwargs), None), or (None, error) if it ran out of memory. Other errors propagate.

    The exception (and the frames holding its tensors) is dropped before the CUDA cache is freed.
    """
    error = None
    try:
        return fn(*args, **kwargs), None
    except BaseException as exc:  # noqa: B902 - filtered below
        if not is_oom(exc):
            raise
        lines = str(exc).strip().splitlines() or [""]
        error = f"{type(exc).__name__}: {lines[0][:500]}"
    free_memory()
    return None, error


def sweep_lengths(make_and_run: Callable[[int], dict], lengths: Iterable[int], *,
                  stop_after_oom: bool = False, on_row: Callable[[dict], None] | None = None) -> list[dict]:
    """One row per length: {"T": T, "status": "ok", **make_and_run(T)} or {"T": T, "status": "oom", "error": ...}.

    An OOM at one length does not stop the sweep (decision B8). With stop_after_oom, every longer length after the
    first OOM gets {"T": T, "status": "skipped", "error": "oom at T=..."} without running. `on_row` sees
    each row as soon as it exists (for printing).
    """
    rows, oom_at = [], None
    for T in lengths:
        T = int(T)
        if oom_at is not None and stop_after_oom and T >= oom_at:
            row = {"T": T, "status": "skipped", "error": f"oom at T={oom_at}"}
        else:
            result, error = run_guarded(make_and_run, T)
            if error is not None:
                row = {"T": T, "status": "oom", "error": error}
                oom_at = T if oom_at is None else min(oom_at, T)
            else:
                row = {"T": T, "status": "ok", **(result or {})}
                row["T"] = T
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows
