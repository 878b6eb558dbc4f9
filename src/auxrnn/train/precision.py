"""Autocast precision: float32, or bfloat16 where it pays (decisions T24, T28).

`train.precision` is "fp32" (the paper cells: decision T24), "bf16" (autocast everywhere), or "auto": bf16
where the device computes it natively, fp32 elsewhere. Native bf16 on a CPU means the AVX512-BF16 or
AMX-BF16 instructions on x86 (oneDNN then runs the LSTM kernels in bf16) or the BF16 extension on ARM;
without them autocast emulates bf16 and is slower than float32. On CUDA it is what the card reports.
A run resolves "auto" once and keeps that choice in its checkpoints, so a resume on another machine
carries on in the same precision.
"""
from __future__ import annotations

import contextlib
from functools import lru_cache

import torch

_CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")  # x86 (cpuinfo "flags"), ARM ("Features")


@lru_cache(maxsize=1)
def cpu_bf16_flags() -> tuple[str, ...]:
    """The bf16 instruction-set flags this CPU reports (/proc/cpuinfo); () where none or not Linux."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key = line.split(":", 1)[0].strip().lower()
                if key in ("flags", "features"):
                    words = set(line.split(":", 1)[1].split())
                    return tuple(flag for flag in _CPU_BF16_FLAGS if flag in words)
    except OSError:
        pass
    return ()


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bfloat16 natively (not emulated through float32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    return device.type == "cpu" and bool(cpu_bf16_flags())


def resolve(precision: str, device: torch.device) -> str:
    """"fp32" or "bf16": the precision a run on `device` computes in for train.precision=`precision`."""
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def describe(precision: str, device: torch.device) -> str:
    """One line for the run header: what was chosen and why."""
    chosen = resolve(precision, device)
    if precision != "auto":
        return chosen
    if device.type == "cpu":
        why = f"CPU has {', '.join(cpu_bf16_flags())}" if chosen == "bf16" else "no native bf16 on this CPU"
    else:
        why = "native bf16 on this GPU" if chosen == "bf16" else "no native bf16 on this GPU"
    return f"{chosen} (auto: {why})"


def autocast(resolved: str, device: torch.device):
    """The context a step or an evaluation runs in: bf16 autocast, or nothing for fp32."""
    if resolved == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
