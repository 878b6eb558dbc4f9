"""Step time and peak memory of one training step, per model and sequence length (`auxrnn bench`).

A stripped copy of the hot loop: burn-in steps, then timed steps (forward, backward, Adam) between
device synchronisations. On CUDA, peak memory is the allocator's peak during the timed steps; on CPU
each case runs in a fresh process and reports the growth of its peak resident set over the state just
before the first step (the CPU allocator has no peak counter).
"""
from __future__ import annotations

import multiprocessing as mp
import resource
import time
from dataclasses import dataclass

import torch

from auxrnn.memory import run_guarded
from auxrnn.models import AuxRNN, ModelConfig, TransformerClassifier, matched_transformer_config
from auxrnn.train import precision as precisions
from auxrnn.train.cpu import flush_denormals, use_threads

# name -> ModelConfig overrides; the MNIST defaults of the paper otherwise (LSTM-128, 2x256 decoder).
CASES: dict[str, dict] = {
    "lstm-full": dict(aux="none", truncate="full"),
    "lstm-t300": dict(aux="none", truncate=300),
    "rlstm-1x600": dict(aux="reconstruct", n_anchors=1, subseq_len=600, truncate=300, aux_truncate=300),
    # the CPU-scale cells' r-LSTM (table2-mnist-cpu): a 1 x 128 decoder
    "rlstm-1x600-cpu": dict(aux="reconstruct", n_anchors=1, subseq_len=600, truncate=300, aux_truncate=300,
                            aux_hidden=128, aux_layers=1),
    "rlstm-20x30": dict(aux="reconstruct", n_anchors=20, subseq_len=30, truncate=300, aux_truncate=30),  # decision M15
    "plstm-1x600": dict(aux="predict", n_anchors=1, subseq_len=600, truncate=300),
    "plstm-1x600-cpu": dict(aux="predict", n_anchors=1, subseq_len=600, truncate=300, aux_truncate=300,
                            aux_hidden=128, aux_layers=1),  # the CPU-scale cells' p-LSTM: a 1 x 128 predictor
}
# Inference cases time `AuxRNN.predict` of the named training case: one no-grad read over T, the floor
# under every truncated step (which must read all T steps once, then recompute its windows).
INFERENCE: dict[str, str] = {"lstm-infer": "lstm-t300"}
DEFAULT_LENGTHS = (784, 1024, 4096, 16384)


@dataclass
class BenchSpec:
    model: str
    T: int
    batch: int
    device: str
    steps: int = 5
    warmup: int = 2
    seed: int = 0
    concurrent: int = 1  # copies of the case trained at once, each in its own process
    threads: int = 0     # CPU threads per copy; 0 = its share of the cores (auxrnn.train.cpu.choose_threads)
    precision: str = "fp32"  # "fp32" | "bf16": autocast as train.precision (auxrnn.train.precision)


def build_case(name: str, **overrides) -> torch.nn.Module:
    """The model benchmarked under `name` (see CASES; "transformer" is the one matched to the default r-LSTM)."""
    if name == "transformer":
        return TransformerClassifier(matched_transformer_config(ModelConfig(), **overrides))
    name = INFERENCE.get(name, name)
    if name not in CASES:
        raise ValueError(f"unknown bench model {name!r}; choose from {sorted([*CASES, *INFERENCE, 'transformer'])}")
    return AuxRNN(ModelConfig(**{**CASES[name], **overrides}))


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


_BARRIER = None


def _set_barrier(barrier) -> None:
    global _BARRIER
    _BARRIER = barrier


def measure(spec: BenchSpec) -> dict:
    """Run one case in this process and return its record (timed steps start together across copies)."""
    device = torch.device(spec.device)
    threads = use_threads(spec.threads, spec.concurrent)[0] if device.type == "cpu" else torch.get_num_threads()
    torch.manual_seed(spec.seed)
    model = build_case(spec.model).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randint(0, 256, (spec.batch, spec.T), dtype=torch.uint8, device=device)
    lengths = torch.full((spec.batch,), spec.T)
    y = torch.randint(0, 10, (spec.batch,), device=device)
    gen = torch.Generator().manual_seed(spec.seed)
    cuda = device.type == "cuda"

    def step():
        with precisions.kernels(spec.precision, device):  # as the training loop steps
            with precisions.autocast(spec.precision, device):
                if spec.model in INFERENCE:
                    model.predict(x, lengths)
                    return
                loss = model(x, lengths, y, generator=gen).loss
            loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    base = _rss_mib()  # CPU: before the first step, so optimizer state and gradients count too
    for _ in range(spec.warmup):
        step()
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    if _BARRIER is not None:
        _BARRIER.wait()
    t0 = time.perf_counter()
    for _ in range(spec.steps):
        step()
    if cuda:
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if cuda else max(_rss_mib() - base, 0.0)
    name = torch.cuda.get_device_name(device) if cuda else "cpu"
    return {"model": spec.model, "T": spec.T, "batch": spec.batch, "device": name,
            "step_ms": round(1000 * elapsed / spec.steps, 2), "peak_mib": round(peak, 1),
            "peak_kind": "allocator peak" if cuda else "peak RSS growth", "steps": spec.steps,
            "concurrent": spec.concurrent, "threads": threads, "steps_per_s": round(spec.steps / elapsed, 3),
            "precision": spec.precision}


def _measure_flushed(spec: BenchSpec) -> dict:
    with flush_denormals(spec.device):  # as the training loop runs (auxrnn.train.cpu; decision T22)
        return measure(spec)


def _measure_guarded(spec: BenchSpec) -> dict:
    """measure(spec), or an "oom" record when it runs out of memory (auxrnn.memory decides; decision B8)."""
    record, error = run_guarded(_measure_flushed, spec)
    if error is None:
        return record
    return {"model": spec.model, "T": spec.T, "batch": spec.batch, "device": spec.device,
            "step_ms": None, "peak_mib": None, "status": "oom", "error": error}


def _measure_together(spec: BenchSpec) -> dict:
    """Train `spec.concurrent` copies at once, one process each; the record sums their throughput.

    Several small models share one GPU better than one alone leaves it busy: this is how many runs of
    a paper table can share a GPU slice. step_ms is the mean over copies; steps_per_s is the sum.
    """
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(spec.concurrent)
    with ctx.Pool(spec.concurrent, initializer=_set_barrier, initargs=(barrier,)) as pool:
        recs = pool.map(_measure_guarded, [spec] * spec.concurrent)
    if any(r.get("status") == "oom" for r in recs):
        return next(r for r in recs if r.get("status") == "oom")
    rec = dict(recs[0])
    rec["copies"] = [{k: r[k] for k in ("step_ms", "steps_per_s", "peak_mib")} for r in recs]
    rec["step_ms"] = round(sum(r["step_ms"] for r in recs) / len(recs), 2)
    rec["steps_per_s"] = round(sum(r["steps_per_s"] for r in recs), 3)
    rec["peak_mib"] = max(r["peak_mib"] for r in recs)
    return rec


def add_speedups(records: list[dict]) -> None:
    """Set `vs_full` = lstm-full's step time / this record's, for records sharing T, batch, device, copies, threads."""
    def key(r):
        return r["T"], r["batch"], r["device"], r.get("concurrent", 1), r.get("threads"), r.get("precision", "fp32")

    full = {key(r): r["step_ms"] for r in records if r["model"] == "lstm-full" and r.get("step_ms")}
    for r in records:
        ref = full.get(key(r))
        if ref and r.get("step_ms"):
            r["vs_full"] = round(ref / r["step_ms"], 2)


def run_grid(specs: list[BenchSpec], isolate: bool | None = None):
    """Yield one record per spec; CPU cases run in a fresh process each so peak RSS is theirs alone."""
    for spec in specs:
        if spec.concurrent > 1:
            yield _measure_together(spec)
            continue
        fresh = spec.device == "cpu" if isolate is None else isolate
        if not fresh:
            yield _measure_guarded(spec)
            continue
        with mp.get_context("spawn").Pool(1) as pool:
            yield pool.apply(_measure_guarded, (spec,))


def plot_records(records: list[dict], out) -> None:
    """The cost panel of the paper's Fig. 3: step time and peak memory against T, one line per model.

    Single-copy records only (concurrency rows measure sharing, not cost); out-of-memory points are left out.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in records if r.get("concurrent", 1) == 1 and r.get("step_ms")]
    if not rows:
        raise ValueError("no single-copy records to plot")
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    for model in dict.fromkeys((r["model"], r.get("precision", "fp32")) for r in rows):
        pts = sorted((r["T"], r["step_ms"], r["peak_mib"]) for r in rows if (r["model"], r.get("precision", "fp32")) == model)
        label = model[0] if model[1] == "fp32" else f"{model[0]} ({model[1]})"
        T = [p[0] for p in pts]
        ax_t.plot(T, [p[1] / 1000 for p in pts], marker="o", label=label)
        ax_m.plot(T, [max(p[2], 1e-3) for p in pts], marker="o", label=label)
    r0 = rows[0]
    for ax, label in ((ax_t, "seconds per training step"), (ax_m, f"peak MiB ({r0.get('peak_kind', 'peak')})")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("sequence length T")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
    ax_t.legend(fontsize=8)
    fig.suptitle(f"one step at batch {r0['batch']} on {r0['device']} ({r0.get('threads', '?')} threads)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
