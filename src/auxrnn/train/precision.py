"""Autocast precision: float32, or bfloat16 where it pays (decisions T24, T28).

`train.precision` is "fp32" (the paper cells: decision T24), "bf16" (autocast everywhere), or "auto": bf16
where the device computes it natively, fp32 elsewhere. Native bf16 on a CPU means the AVX512-BF16 or
AMX-BF16 instructions on x86 (oneDNN then runs the LSTM kernels in bf16) or the BF16 extension on ARM;
without them bf16 is emulated and slower than float32. On CUDA it is what the card reports.
A run resolves "auto" once and keeps that choice in its checkpoints, so a resume on another machine
carries on in the same precision. On a CPU whose oneDNN has no bf16 LSTM at all (x86 without AVX-512, where
autocast's LSTM raises "could not create a primitive descriptor"), a bf16 step runs with oneDNN off: the LSTM
then computes in float32 and the other layers in emulated bf16, so such a run works but its numbers are not a
native-bf16 CPU's.
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


@lru_cache(maxsize=1)
def onednn_bf16_lstm() -> bool:
    """Whether oneDNN runs an LSTM under CPU bf16 autocast here (a one-step probe; it needs AVX-512 on x86)."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:  # fork_rng: the probe's weight init must not move a run's random stream
        with torch.random.fork_rng(devices=[]), torch.autocast("cpu", dtype=torch.bfloat16):
            torch.nn.LSTM(1, 1)(torch.zeros(1, 1, 1))
    except RuntimeError:
        return False
    return True


@contextlib.contextmanager
def _onednn_off():
    """oneDNN off for one step. Not `torch.backends.mkldnn.flags(enabled=False)`: that also resets its TF32 flag,
    which warns on every CPU build."""
    before = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = before


def kernels(resolved: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The context a whole step, forward and backward, runs in: IEEE float32 cuDNN kernels for fp32 on CUDA.

    cuDNN reads the flag again in the backward pass, so this wraps `loss.backward()` too; `autocast` (the forward
    and evaluation) enters it itself.
    """
    return _ieee_cudnn() if resolved == "fp32" and device.type == "cuda" else contextlib.nullcontext()


@contextlib.contextmanager
def _ieee_cudnn():
    """cuDNN's RNN (and convolution) kernels in IEEE float32 (decision T24).

    PyTorch lets cuDNN's LSTM compute float32 in TF32 by default (10-bit mantissa), so a "fp32" GPU step would
    not have the CPU's gradients. Newer torch keeps one flag per operator family (inside this context its legacy
    `cudnn.allow_tf32` raises when read: set it, never read it); older torch has only that one flag.
    """
    cudnn = torch.backends.cudnn
    families = [getattr(cudnn, name, None) for name in ("conv", "rnn")]
    if all(hasattr(f, "fp32_precision") for f in families):
        before = [f.fp32_precision for f in families]
        for f in families:
            f.fp32_precision = "ieee"
        try:
            yield
        finally:
            for f, value in zip(families, before):
                f.fp32_precision = value
    else:
        before = cudnn.allow_tf32
        cudnn.allow_tf32 = False
        try:
            yield
        finally:
            cudnn.allow_tf32 = before


def autocast(resolved: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The context a step or an evaluation runs in: bf16 autocast, or IEEE float32 kernels for fp32."""
    stack = contextlib.ExitStack()
    stack.enter_context(kernels(resolved, device))
    if resolved == "bf16":
        if device.type == "cpu" and not onednn_bf16_lstm():
            stack.enter_context(_onednn_off())
        stack.enter_context(torch.autocast(device.type, dtype=torch.bfloat16))
    return stack
