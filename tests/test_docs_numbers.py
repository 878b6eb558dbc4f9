"""The prose of docs/results.md and docs/performance.md against the files its numbers come from.

Each claim is a sentence fragment with `{}` fields and the values that fill them, read from the published
summaries, metrics and probe outputs under docs/results/. A claim fails when the prose and its source disagree,
so a regenerated summary or an edited sentence cannot drift apart silently.
"""
from __future__ import annotations

import json
import math
import re
from functools import cache
from pathlib import Path

import pytest
import yaml

from auxrnn.reproduce.report import _wall

DOCS = Path(__file__).resolve().parents[1] / "docs"
RESULTS = DOCS / "results"
MARKED = re.compile(r"<!-- BEGIN auxrnn reproduce (\S+) -->.*?<!-- END auxrnn reproduce \1 -->", re.S)
# Experiments whose resumed cells the prose must all name (RESUMED below).
EXPERIMENTS = ("table2-mnist-cpu", "fig4-mnist-cpu", "fig5-mnist-cpu", "ceiling-mnist-cpu", "table2-pmnist-cpu",
               "delay-mnist-cpu", "fig3-mnist-cpu", "plstm-gap-cpu")


@cache
def _prose(name: str) -> str:
    """A doc with its generated blocks removed and its whitespace collapsed."""
    return " ".join(MARKED.sub(" ", (DOCS / name).read_text()).split())


@cache
def summary(cell: str) -> dict:
    return json.loads((RESULTS / cell / "summary.json").read_text())


@cache
def _records(cell: str) -> tuple[dict, ...]:
    return tuple(json.loads(line) for line in (RESULTS / cell / "metrics.jsonl").read_text().splitlines())


def acc(cell: str, key: str = "test_accuracy") -> float:
    return summary(cell)[key]


def evals(cell: str, key: str = "test_acc") -> dict[int, float]:
    return {r["step"]: r[key] for r in _records(cell) if r["kind"] == "eval"}


def resumes(cell: str) -> list[int]:
    return [r["step"] for r in _records(cell) if r["kind"] == "event" and r["event"] == "resume"]


def crossing(cell: str, bar: float) -> tuple[int, float]:
    """(step, test %) of the first evaluation at or above `bar`."""
    return next((s, a) for s, a in sorted(evals(cell).items()) if a >= bar)


def last_train(cell: str, key: str) -> float:
    return [r[key] for r in _records(cell) if r["kind"] == "train"][-1]


def late_mean(cell: str, key: str, after: int = 1350) -> float:
    """The mean of a training metric over the logged steps after `after` (the last 175 steps of 1550)."""
    values = [r[key] for r in _records(cell) if r["kind"] == "train" and r["step"] > after]
    return sum(values) / len(values)


def epoch_means(cell: str, key: str) -> tuple[float, ...]:
    """The mean of a metric over the logged supervised steps of each epoch, first epoch first."""
    by_epoch: dict[int, list[float]] = {}
    for r in _records(cell):
        if r["kind"] == "train" and r["phase"] == "train":
            by_epoch.setdefault(int(r["epoch"]), []).append(r[key])
    return tuple(sum(v) / len(v) for _, v in sorted(by_epoch.items()))


def the_one(values: set[float]) -> float:
    """The value a sentence states for several results ("with both seeds", "at every evaluation"): one, or NaN."""
    return next(iter(values)) if len(values) == 1 else math.nan


def gap600(cell: str) -> float:
    """Validation accuracy (%) of a plstm-gap-cpu cell at step 600, where every cell of that experiment stops."""
    return evals(GAP + cell, "val_acc")[600]


def ink(side: int, name: str = "ink_in_window.txt") -> float:
    """The share of the ink (%) in the window at `side`, from scripts/ink_in_window.py's saved output `name`."""
    return float(re.search(rf"side +{side} .* (\d+\.\d\d)%$", (RESULTS / "fig3-mnist-cpu" / name).read_text(),
                           re.M).group(1))


def probe(path: str, row: str) -> float:
    """A row of a saved window_probe.py output."""
    rows = dict(re.findall(r"^  (.+?)\s+(\d+\.\d\d)$", (RESULTS / path).read_text(), re.M))
    return float(rows[row])


def bench(name: str, precision: str, field: str = "step_ms", **match) -> float:
    """A field (ms per step by default) of the first row of a bench JSON with this precision and `match`'s fields."""
    return next(r[field] for r in json.loads((DOCS / name).read_text())
                if r["precision"] == precision and all(r[k] == v for k, v in match.items()))


def wall(cell: str) -> str:
    """A cell's wall time as its results table writes it (e.g. 4m06s)."""
    return _wall(summary(cell)["wall_seconds"])


def step_seconds(cell: str) -> list[float]:
    """Seconds per logged training step of a cell (its batch over its examples per second)."""
    batch = yaml.safe_load((RESULTS / cell / "config.yaml").read_text())["data"]["batch_size"]
    return [batch / r["examples_per_s"] for r in _records(cell) if r["kind"] == "train"]


T2, F4, F5, CEIL, PM, DELAY, F3, GAP = (f"{e}/" for e in EXPERIMENTS)
XEON, AMD = "Intel(R) Xeon(R)", "AMD EPYC"
WINDOW_SMNIST = "ceiling-mnist-cpu/rlstm_t300_x2/window_probe.txt"
WINDOW_PMNIST = "table2-pmnist-cpu/rlstm_t300/window_probe.txt"
LINEAR, MLP = "linear classifier on the last 300 steps", "MLP on the last 300 steps"
FIG3_BENCH = "results/fig3-mnist-cpu/bench.json"


GPU, GPU_TF32 = "bench-gpu.json", "bench-gpu-cudnn-tf32.json"
GPU_ROWS = ("lstm-full", "lstm-t300", "lstm-infer", "rlstm-1x600", "rlstm-20x30", "plstm-1x600")


def gpu(model: str, T: int, field: str = "step_ms", name: str = GPU) -> float:
    """A field of the float32 H200 bench record of `model` at `T` (docs/bench-gpu*.json)."""
    return bench(name, "fp32", field, model=model, T=T)


def gpu_tf32_ratios() -> list[float]:
    """Each case's TF32 step time over its IEEE one."""
    return [gpu(m, T, name=GPU_TF32) / gpu(m, T) for m in GPU_ROWS for T in (784, 1024, 4096, 16384)]


def rlstm_784_ms(precision: str) -> float:
    """The r-LSTM's (1 x 600, 1 x 128 decoder) ms per step at T = 784 in fig3-mnist-cpu's cost bench."""
    return bench(FIG3_BENCH, precision, model="rlstm-1x600-cpu", T=784)


def _gap(a: str, b: str) -> float:
    return abs(acc(a) - acc(b))


# (doc, fragment with {} fields, function giving the values); fields are formatted as written in the fragment.
CLAIMS = [
    ("results.md", "the r-LSTM is {:.2f} points above the plain LSTM with the same Truncate300, the p-LSTM {:.2f}",
     lambda: (acc(T2 + "rlstm_t300") - acc(T2 + "lstm_t300"), acc(T2 + "plstm_t300") - acc(T2 + "lstm_t300"))),
    ("results.md", "It sat at chance for 1100 steps ({:.2f}%, the majority class, at every evaluation but step "
     "400's {:.2f}%)", lambda: (evals(T2 + "lstm_t300")[1100], evals(T2 + "lstm_t300")[400])),
    ("results.md", "(cell `lstm_t300_fb0`: {:.2f}% at every evaluation but step 400's {:.2f}%)",
     lambda: (evals(T2 + "lstm_t300_fb0")[1550], evals(T2 + "lstm_t300_fb0")[400])),
    ("results.md", "a linear classifier on them alone reaches {:.2f}%, an MLP {:.2f}%",
     lambda: (probe(WINDOW_SMNIST, LINEAR), probe(WINDOW_SMNIST, MLP))),
    ("results.md", "`lstm_t300` at step {}, `plstm_t300` at {}, `rlstm_t300_adam` at {}, `plstm_t300_adam` at {} "
     "and `rlstm_t300_seed1` at {}",
     lambda: tuple(resumes(T2 + c)[0] for c in ("lstm_t300", "plstm_t300", "rlstm_t300_adam", "plstm_t300_adam",
                                                "rlstm_t300_seed1"))),
    ("results.md", "11.35% (validation 11.52%) at all but the first, step 100's {:.2f}%",
     lambda: (evals(T2 + "lstm_t300_seed1")[100],)),
    ("results.md", "ends at **{:.2f}%** (seed 0, Intel Xeon: {:.2f}%)",
     lambda: (acc(T2 + "rlstm_t300_seed1"), acc(T2 + "rlstm_t300"))),
    ("results.md", "{:.2f} points (seed 0) and {:.2f} points (seed 1) above the truncated LSTM of the same seed",
     lambda: (acc(T2 + "rlstm_t300") - acc(T2 + "lstm_t300"),
              acc(T2 + "rlstm_t300_seed1") - acc(T2 + "lstm_t300_seed1"))),
    ("results.md", "step 300 of the r-LSTM: {:.2f}% on the Intel Xeon",
     lambda: (evals(T2 + "rlstm_t300", "val_acc")[300],)),
    ("results.md", "end {:.2f} points away from table2-mnist-cpu's (Intel Xeon) for LSTM Full BP ({:.2f} against "
     "{:.2f}), {:.2f} for the r-LSTM ({:.2f} against {:.2f}) and {:.2f} for the p-LSTM ({:.2f} against {:.2f})",
     lambda: tuple(v for c in ("lstm_full", "rlstm_t300", "plstm_t300")
                   for v in (_gap(F5 + c, T2 + c), acc(F5 + c), acc(T2 + c)))),
    ("results.md", "BPTT 100 was not: it peaked at step {} ({:.2f}) and ended at {:.2f}",
     lambda: (max(evals(F4 + "rlstm_t100").items(), key=lambda kv: kv[1]) + (acc(F4 + "rlstm_t100"),))),
    ("results.md", "resumed at step {} on one thread and at step {} on two threads",
     lambda: tuple(resumes(F4 + "plstm_t0"))),
    ("results.md", "{:.2f} against {:.2f} ({:.2f} + 10), by {:.2f} points",
     lambda: (acc(F4 + "rlstm_t1"), acc(T2 + "lstm_t300") + 10, acc(T2 + "lstm_t300"),
              acc(F4 + "rlstm_t1") - acc(T2 + "lstm_t300") - 10)),
    ("results.md", "BPTT 100 at step {}, BPTT 50 at {}, BPTT 1 and none at {}, the p-LSTM at {} and {}",
     lambda: (resumes(F4 + "rlstm_t100")[0], resumes(F4 + "rlstm_t50")[0], resumes(F4 + "rlstm_t1")[0],
              *resumes(F4 + "plstm_t0"))),
    ("results.md", "resumed from its checkpoint at step {} with two threads",
     lambda: tuple(resumes(PM + "plstm_t300"))),
    ("results.md", "a linear classifier on those 300 pixels reaches **{:.2f}%** and an MLP **{:.2f}%**",
     lambda: (probe(WINDOW_PMNIST, LINEAR), probe(WINDOW_PMNIST, MLP))),
    ("results.md", "(auxiliary loss {:.2f} at the last logged step, against {:.2f} on sequential MNIST)",
     lambda: (last_train(PM + "rlstm_t300", "aux_loss"), last_train(T2 + "rlstm_t300", "aux_loss"))),
    ("results.md", "It trails the r-LSTM by {:.2f} to {:.2f} points at every evaluation up to step 1200",
     lambda: (lambda d: (min(d), max(d)))([evals(PM + "rlstm_t300")[s] - a
                                           for s, a in evals(PM + "plstm_t300").items() if s <= 1200])),
    ("results.md", "LSTM Full BP was stopped and resumed from its checkpoint at steps {} and {}, the r-LSTM at "
     "steps {} and {}", lambda: (*resumes(F5 + "lstm_full"), *resumes(F5 + "rlstm_t300"))),
    ("results.md", "LSTM Truncate300 at 3100 steps was stopped and resumed from its checkpoint at step {}, the "
     "r-LSTM at 3100 steps at step {}", lambda: (*resumes(CEIL + "lstm_t300_x2"), *resumes(CEIL + "rlstm_t300_x2"))),
    ("results.md", "up to step 2600 ({:.2f}%, the majority class, but {:.2f}% at step 800)",
     lambda: (evals(CEIL + "lstm_t300_x2")[2600], evals(CEIL + "lstm_t300_x2")[800])),
    ("results.md", "({:.2f}% at every evaluation but step 400's {:.2f}%), and at 3100 steps leaves chance at step "
     "1400",
     lambda: (evals(CEIL + "ceiling_300")[1550], evals(CEIL + "ceiling_300")[400])),
    ("results.md", "It gains {:.2f} points on its 1550-step run ({:.2f}%, on the Intel Xeon)",
     lambda: (acc(CEIL + "rlstm_t300_x2") - acc(T2 + "rlstm_t300"), acc(T2 + "rlstm_t300"))),
    ("results.md", "{:.2f} against {:.2f} ({:.2f} + 5), by {:.2f} points over the bar ({:.2f} over the ceiling model",
     lambda: (acc(CEIL + "rlstm_t300_x2"), acc(CEIL + "ceiling_300_x2") + 5, acc(CEIL + "ceiling_300_x2"),
              acc(CEIL + "rlstm_t300_x2") - acc(CEIL + "ceiling_300_x2") - 5,
              acc(CEIL + "rlstm_t300_x2") - acc(CEIL + "ceiling_300_x2"))),
    ("results.md", "these three cells took {:.0f} s, {:.0f} s and {:.0f} s of wall time",
     lambda: tuple(acc(CEIL + c, "wall_seconds") for c in ("rlstm_t300_x2", "lstm_t300_x2", "ceiling_300_x2"))),
    ("results.md", "takes it from {:.2f}% to {:.2f}%",
     lambda: (probe(WINDOW_SMNIST, "as trained"), probe(WINDOW_SMNIST, "steps [0, 484) from another example"))),
    ("results.md", "costs it {:.2f} points",
     lambda: (probe(WINDOW_SMNIST, "as trained") - probe(WINDOW_SMNIST, "steps [0, 484) from another example"),)),
    ("results.md", "missed on both in bf16** ({:.2f}% with seed 0, {:.2f}% with seed 1)",
     lambda: (acc(DELAY + "rlstm_t300_bf16"), acc(DELAY + "rlstm_t300_seed1"))),
    ("results.md", "Seed 0 climbs to the end ({:.2f}% at step 200, {:.2f}% at 800, {:.2f}% at 1550); seed 1 peaks at "
     "{:.2f}% at step 1200 and falls back to {:.2f}%",
     lambda: (*(evals(DELAY + "rlstm_t300_bf16")[s] for s in (200, 800, 1550)),
              evals(DELAY + "rlstm_t300_seed1")[1200], acc(DELAY + "rlstm_t300_seed1"))),
    ("results.md", "**LSTM Truncate300** (no bar): {:.2f}% with both seeds",
     lambda: (the_one({acc(DELAY + "lstm_t300"), acc(DELAY + "lstm_t300_seed1")}),)),
    ("results.md", "**r-LSTM with noise fill ≥ 25%: missed** ({:.2f}%, seed 0; chance at every evaluation, "
     "{:.2f}–{:.2f}%)",
     lambda: (acc(DELAY + "rlstm_t300_noise"), min(evals(DELAY + "rlstm_t300_noise").values()),
              max(evals(DELAY + "rlstm_t300_noise").values()))),
    ("results.md", "Its training batches reach {:.2f}% (mean of steps 1375–1550) and its supervised loss {:.3f}",
     lambda: (late_mean(DELAY + "rlstm_t300_noise", "train_acc"), late_mean(DELAY + "rlstm_t300_noise", "sup_loss"))),
    ("results.md", "{:.2f}%, {:.2f}%, {:.2f}% and {:.2f}% in epochs 1 to 4",
     lambda: epoch_means(DELAY + "rlstm_t300_noise", "train_acc")),
    ("results.md", "(seed 0: {:.2f}% training batches, {:.2f}% test)",
     lambda: (late_mean(DELAY + "rlstm_t300_bf16", "train_acc"), acc(DELAY + "rlstm_t300_bf16"))),
    ("results.md", "(mean auxiliary loss {:.3f} against {:.3f} with blanks, same steps)",
     lambda: (late_mean(DELAY + "rlstm_t300_noise", "aux_loss"), late_mean(DELAY + "rlstm_t300_bf16", "aux_loss"))),
    ("results.md", "is {:.2f} points with seed 0 and {:.2f} with seed 1",
     lambda: (acc(DELAY + "rlstm_t300_bf16") - acc(DELAY + "lstm_t300"),
              acc(DELAY + "rlstm_t300_seed1") - acc(DELAY + "lstm_t300_seed1"))),
    ("results.md", "the noise-fill r-LSTM at steps {} and {}, the r-LSTM with seed 1 at step {}",
     lambda: (*resumes(DELAY + "rlstm_t300_noise"), *resumes(DELAY + "rlstm_t300_seed1"))),
    ("results.md", "makes an r-LSTM step {:.2f}x cheaper than float32 on the AMD EPYC these ran on ({:.0f} against "
     "{:.0f} ms at T = 784, batch 128, one thread; `fig3-mnist-cpu/bench.json`",
     lambda: (rlstm_784_ms("fp32") / rlstm_784_ms("bf16"), rlstm_784_ms("fp32"), rlstm_784_ms("bf16"))),
    ("results.md", "the float32 r-LSTM's moved between {:.1f} and {:.1f} s",
     lambda: (min(step_seconds(DELAY + "rlstm_t300")), max(step_seconds(DELAY + "rlstm_t300")))),
    ("results.md", "it ends at **{:.2f}%** (validation {:.2f}%) where bf16 ends at {:.2f}%, ahead at every evaluation "
     "from step 400 on ({:.2f}% against {:.2f}%)",
     lambda: (acc(DELAY + "rlstm_t300"), acc(DELAY + "rlstm_t300", "val_accuracy"), acc(DELAY + "rlstm_t300_bf16"),
              evals(DELAY + "rlstm_t300")[400], evals(DELAY + "rlstm_t300_bf16")[400])),
    ("results.md", "Its auxiliary loss is the same ({:.3f} against {:.3f}, mean of steps 1375–1550), its training "
     "batches are not ({:.2f}% against {:.2f}%)",
     lambda: (*(late_mean(DELAY + c, "aux_loss") for c in ("rlstm_t300", "rlstm_t300_bf16")),
              *(late_mean(DELAY + c, "train_acc") for c in ("rlstm_t300", "rlstm_t300_bf16")))),
    ("results.md", "Seed 1 repeats both: in float32 it ends at **{:.2f}%** (validation {:.2f}%) where bf16 ends at "
     "{:.2f}%, ahead at every evaluation ({:.2f}% against {:.2f}% at step 200), with the same auxiliary loss ({:.3f} "
     "against {:.3f}) and higher training batches ({:.2f}% against {:.2f}%)",
     lambda: (acc(DELAY + "rlstm_t300_fp32_seed1"), acc(DELAY + "rlstm_t300_fp32_seed1", "val_accuracy"),
              acc(DELAY + "rlstm_t300_seed1"), evals(DELAY + "rlstm_t300_fp32_seed1")[200],
              evals(DELAY + "rlstm_t300_seed1")[200],
              *(late_mean(DELAY + c, "aux_loss") for c in ("rlstm_t300_fp32_seed1", "rlstm_t300_seed1")),
              *(late_mean(DELAY + c, "train_acc") for c in ("rlstm_t300_fp32_seed1", "rlstm_t300_seed1")))),
    ("results.md", "**r-LSTM Truncate300 ≥ 30% on both seeds: met on both in float32** ({:.2f}% with seed 0, {:.2f}% "
     "with seed 1)", lambda: (acc(DELAY + "rlstm_t300"), acc(DELAY + "rlstm_t300_fp32_seed1"))),
    ("results.md", "Seed 1 passes 30% at step {} ({:.2f}%) and seed 0 at step {} ({:.2f}%)",
     lambda: (*crossing(DELAY + "rlstm_t300_fp32_seed1", 30), *crossing(DELAY + "rlstm_t300", 30))),
    ("results.md", "**LSTM Truncate300** (no bar): {:.2f}%, the majority class, at every evaluation but step 400's "
     "{:.2f}% (seed 0)", lambda: (acc(DELAY + "lstm_t300_fp32"), evals(DELAY + "lstm_t300_fp32")[400])),
    ("results.md", "the r-LSTM leads it by {:.2f} points",
     lambda: (acc(DELAY + "rlstm_t300") - acc(DELAY + "lstm_t300_fp32"),)),
    ("results.md", "the float32 r-LSTM at steps {} and {}, the float32 r-LSTM with seed 1 at step {}.",
     lambda: (*resumes(DELAY + "rlstm_t300"), *resumes(DELAY + "rlstm_t300_fp32_seed1"))),
    ("results.md", "found its r-LSTM far lower in bf16 than in float32 ({:.2f}% and {:.2f}% against {:.2f}% and "
     "{:.2f}% at T = 1100, seeds 0 and 1",
     lambda: (acc(DELAY + "rlstm_t300_bf16"), acc(DELAY + "rlstm_t300_seed1"), acc(DELAY + "rlstm_t300"),
              acc(DELAY + "rlstm_t300_fp32_seed1"))),
    ("results.md", "The last 300 steps hold {:.2f}% of the ink at T = 784, {:.2f}% at 1600, {:.2f}% at 3136, "
     "{:.2f}% at 6400 and {:.2f}% at 16384", lambda: tuple(ink(side) for side in (28, 40, 56, 80, 128))),
    ("results.md", "With {:.2f}% of the ink in its supervised window", lambda: (ink(56),)),
    ("results.md", "**r-LSTM Truncate300 ≥ 30% at T = 16384: missed** ({:.2f}%, the majority class at every evaluation",
     lambda: (the_one({acc(F3 + "rlstm_t300_128"), *evals(F3 + "rlstm_t300_128").values()}),)),
    ("results.md", "the truncated LSTM ends at {:.2f}% as well, the majority class at every evaluation (resumed from "
     "its checkpoints at steps {} and {})", lambda: (the_one({acc(F3 + "lstm_t300_128"),
                                                              *evals(F3 + "lstm_t300_128").values()}),
                                                     *resumes(F3 + "lstm_t300_128"))),
    ("results.md", "(reconstruction loss {:.3f}, mean of steps 1375–1550, against {:.3f} at T = 3136)",
     lambda: (late_mean(F3 + "rlstm_t300_128", "aux_loss"), late_mean(F3 + "rlstm_t300_56", "aux_loss"))),
    ("results.md", "(the last 900 steps) holds {:.2f}% of the ink at T = 3136 but {:.2f}% at T = 16384",
     lambda: (ink(56, "ink_in_window_900.txt"), ink(128, "ink_in_window_900.txt"))),
    ("results.md", "at T = 3136: met** ({:.2f}% against {:.2f}%, by {:.2f} points over the bar)",
     lambda: (acc(F3 + "rlstm_t300_56"), acc(F3 + "lstm_t300_56"),
              acc(F3 + "rlstm_t300_56") - acc(F3 + "lstm_t300_56") - 20)),
    ("results.md", "the r-LSTM leaves chance between steps 400 and 800 ({:.2f}%, then {:.2f}%) and is still climbing "
     "at the end ({:.2f}% at step 1200)", lambda: tuple(evals(F3 + "rlstm_t300_56")[s] for s in (400, 800, 1200))),
    ("results.md", "**As published (`baseline`): {:.2f}%.**", lambda: (gap600("baseline"),)),
    ("results.md", "step: {:.2f}% at step 600 there too), whose r-LSTM is at {:.2f}% at step 600: the gap to close is {:.2f} "
     "points here, and their test accuracies end {:.2f} points apart at step 1550 ({:.2f} against {:.2f})",
     lambda: (evals(F5 + "plstm_t300", "val_acc")[600], evals(F5 + "rlstm_t300", "val_acc")[600],
              evals(F5 + "rlstm_t300", "val_acc")[600] - gap600("baseline"),
              acc(F5 + "rlstm_t300") - acc(F5 + "plstm_t300"), acc(F5 + "rlstm_t300"), acc(F5 + "plstm_t300"))),
    ("results.md", "The baseline was stopped with a checkpoint and resumed at step {}.", lambda: resumes(GAP + "baseline")),
    ("results.md", "(M11): {:.2f}%**, {:.2f} points above the baseline",
     lambda: (gap600("one_segment"), gap600("one_segment") - gap600("baseline"))),
    ("results.md", "(M12): {:.2f}%**, {:.2f} points above",
     lambda: (gap600("main_start"), gap600("main_start") - gap600("baseline"))),
    ("results.md", "instead of 1 × 128: {:.2f}%**, {:.2f} points below the baseline ({:.1f}× the auxiliary parameters, "
     "{:.1f}× the wall time)", lambda: (gap600("predictor_2x256"), gap600("baseline") - gap600("predictor_2x256"),
                                        summary(GAP + "predictor_2x256")["parameters"]["auxiliary"]
                                        / summary(GAP + "baseline")["parameters"]["auxiliary"],
                                        summary(GAP + "predictor_2x256")["wall_seconds"]
                                        / summary(GAP + "baseline")["wall_seconds"])),
    ("results.md", "The largest gain, the main state as the predictor's start, is {:.2f} of the {:.2f} points; one "
     "segment gains {:.2f} and the larger predictor loses {:.2f}.",
     lambda: (gap600("main_start") - gap600("baseline"), evals(F5 + "rlstm_t300", "val_acc")[600] - gap600("baseline"),
              gap600("one_segment") - gap600("baseline"), gap600("baseline") - gap600("predictor_2x256"))),
    ("results.md", "(the baseline leads at step 300 with {:.2f}% against {:.2f} and {:.2f}, and trails at step 400 with "
     "{:.2f}% against {:.2f} and {:.2f})",
     lambda: tuple(evals(GAP + c, "val_acc")[s] for s in (300, 400) for c in ("baseline", "one_segment", "main_start"))),
    ("results.md", "At T = 1600 ({:.2f}% of the ink in the window) the r-LSTM ends at {:.2f}% against {:.2f}% for LSTM "
     "Truncate300; at T = 784 at {:.2f}% against {:.2f}% (the r-LSTM there was stopped and resumed from its "
     "checkpoint at step {})",
     lambda: (ink(40), acc(F3 + "rlstm_t300_40"), acc(F3 + "lstm_t300_40"), acc(F3 + "rlstm_t300_28"),
              acc(F3 + "lstm_t300_28"), *resumes(F3 + "rlstm_t300_28"))),
    ("results.md", "No bar at T = 6400 ({:.2f}% of the ink in the window): the r-LSTM ends at {:.2f}% (chance at step "
     "400, {:.2f}% at 800, {:.2f}% at 1200), {:.2f} points above LSTM Truncate300, which ends at {:.2f}%, at chance at "
     "every evaluation ({:.2f}–{:.2f}%)",
     lambda: (ink(80), acc(F3 + "rlstm_t300_80"), evals(F3 + "rlstm_t300_80")[800], evals(F3 + "rlstm_t300_80")[1200],
              acc(F3 + "rlstm_t300_80") - acc(F3 + "lstm_t300_80"), acc(F3 + "lstm_t300_80"),
              min(evals(F3 + "lstm_t300_80").values()), max(evals(F3 + "lstm_t300_80").values()))),
    ("results.md", "p-LSTM Truncate300 at T = 3136 (no bar): {:.2f}%, {:.2f} points below the r-LSTM and {:.2f} above",
     lambda: (acc(F3 + "plstm_t300_56"), acc(F3 + "rlstm_t300_56") - acc(F3 + "plstm_t300_56"),
              acc(F3 + "plstm_t300_56") - acc(F3 + "lstm_t300_56"))),
    ("results.md", "At T = 16384 it ends at {:.2f}%, at chance at every evaluation, like the r-LSTM there",
     lambda: (acc(F3 + "plstm_t300_128"),)),
    ("results.md", "at T = 784 it ends at {:.2f}%, at chance until step 800 ({:.2f}% at 1200), below the r-LSTM's {:.2f}%",
     lambda: (acc(F3 + "lstm_full_28"), evals(F3 + "lstm_full_28")[1200], acc(F3 + "rlstm_t300_28"))),
    ("results.md", "at T = 1600, 3136, 6400 and 16384 it ends at {:.2f}%, at chance at every evaluation, where the "
     "r-LSTM reaches {:.2f}%, {:.2f}%, {:.2f}% and {:.2f}%",
     lambda: (the_one({acc(F3 + f"lstm_full_{side}") for side in (40, 56, 80, 128)}),
              *(acc(F3 + f"rlstm_t300_{side}") for side in (40, 56, 80, 128)))),
    ("results.md", "The T = 16384 cell ran on an NVIDIA H200 in bf16 ({}), not on the EPYC, where a step costs {:.0f} "
     "ms in bf16 on one thread (the cost panel below), {:.1f} hours for {} steps",
     lambda: (wall(F3 + "lstm_full_128"), bench(FIG3_BENCH, "bf16", model="lstm-full", T=16384),
              bench(FIG3_BENCH, "bf16", model="lstm-full", T=16384) * summary(F3 + "lstm_full_128")["steps"] / 3.6e6,
              summary(F3 + "lstm_full_128")["steps"])),
    ("results.md", "on two CPUs, LSTM Full BP at T = 784 in float32 ended {:.2f} points apart",
     lambda: (_gap(T2 + "lstm_full", F5 + "lstm_full"),)),
    ("results.md", "Across the five lengths accuracy falls with that share ({:.2f}, {:.2f}, {:.2f}, {:.2f} and {:.2f}% at "
     "T = 784 ... 16384 against {:.0f}, {:.2f}, {:.2f}, {:.2f} and {:.2f}% of the ink in the last 900 steps), but with "
     "{:.2f}% the r-LSTM at 6400 still learns",
     lambda: (*(acc(F3 + f"rlstm_t300_{side}") for side in (28, 40, 56, 80, 128)),
              *(ink(side, "ink_in_window_900.txt") for side in (28, 40, 56, 80, 128)), ink(80, "ink_in_window_900.txt"))),
    ("performance.md", "{:.0f} ms per step in float32, {:.0f} ms in bf16, {:.2f}×",
     lambda: (bench("bench-cpu-bf16.json", "fp32"), bench("bench-cpu-bf16.json", "bf16"),
              bench("bench-cpu-bf16.json", "fp32") / bench("bench-cpu-bf16.json", "bf16"))),
    ("decisions.md", "Speed: docs/performance.md, \"bf16 on a CPU\" (from docs/bench-cpu-bf16.json).", lambda: ()),
    ("performance.md", "flat, missed on size: {:.0f} MiB ({:.2f} GiB) against {:.0f} MiB at T = 1024",
     lambda: (gpu("rlstm-1x600", 16384, "peak_mib"), gpu("rlstm-1x600", 16384, "peak_mib") / 1024,
              gpu("rlstm-1x600", 1024, "peak_mib"))),
    ("performance.md", "missed: {:.1f} ms (our full BPTT: {:.1f} ms, {:.0f} MiB)",
     lambda: (gpu("rlstm-1x600", 16384), gpu("lstm-full", 16384), gpu("lstm-full", 16384, "peak_mib"))),
    ("performance.md", "r-LSTM 20×30 step at T = 784 ≤ 12 ms | – | missed: {:.1f} ms |",
     lambda: (gpu("rlstm-20x30", 784),)),
    ("performance.md", "every truncated row varies by at most {:.1f}% from T = 784 to 16384",
     lambda: (max(100 * (max(v) / min(v) - 1) for v in ([gpu(m, T, "peak_mib") for T in (784, 1024, 4096, 16384)]
                                                         for m in GPU_ROWS[1:])),)),
    ("performance.md", "(r-LSTM 20×30 {:.1f} ms, the 1×600 models {:.1f} and {:.1f}, full BPTT {:.1f})",
     lambda: (gpu("rlstm-20x30", 16384), *sorted((gpu("plstm-1x600", 16384), gpu("rlstm-1x600", 16384))),
              gpu("lstm-full", 16384))),
    ("performance.md", "At T = 784 the r-LSTM's step ({:.1f} ms) costs {:.0f} times the no-grad read ({:.1f} ms)",
     lambda: (gpu("rlstm-1x600", 784), gpu("rlstm-1x600", 784) / gpu("lstm-infer", 784), gpu("lstm-infer", 784))),
    ("performance.md", "at T = 16384 the read ({:.1f} ms) is about a third of it",
     lambda: (gpu("lstm-infer", 16384) if 0.3 < gpu("lstm-infer", 16384) / gpu("rlstm-1x600", 16384) < 0.37
              else math.nan,)),
    ("performance.md", "took between {:.2f} and {:.2f} times the IEEE grid's time case by case (the r-LSTM 1×600 at "
     "T = 16384: {:.1f} ms against {:.1f})",
     lambda: (min(gpu_tf32_ratios()), max(gpu_tf32_ratios()), gpu("rlstm-1x600", 16384, name=GPU_TF32),
              gpu("rlstm-1x600", 16384))),
    ("performance.md", "1, 2, 4 and 8 copies make {:.2f}, {:.2f}, {:.2f} and {:.2f} steps per second in all",
     lambda: tuple(r["steps_per_s"] for r in json.loads((DOCS / "bench-gpu-concurrency-cudnn-tf32.json").read_text()))),
]

# The cells the prose places on a machine.
MACHINES = {**{T2 + c: XEON for c in ("lstm_t300", "rlstm_t300", "plstm_t300", "lstm_full")},
            **{T2 + c: AMD for c in ("lstm_t300_seed1", "rlstm_t300_seed1")},
            **{F4 + c: AMD for c in ("rlstm_t100", "rlstm_t50", "rlstm_t1", "rlstm_t0", "plstm_t0")},
            **{f"{e}/{p.name}": AMD for e in EXPERIMENTS[2:] for p in (RESULTS / e).iterdir() if p.is_dir()},
            F3 + "lstm_full_128": "NVIDIA H200"}

# The resumed cells the prose names (each by a CLAIMS entry above).
RESUMED = {T2 + c for c in ("lstm_t300", "plstm_t300", "rlstm_t300_adam", "plstm_t300_adam", "rlstm_t300_seed1")} | {
    F4 + c for c in ("rlstm_t100", "rlstm_t50", "rlstm_t1", "rlstm_t0", "plstm_t0")} | {
    F5 + "lstm_full", F5 + "rlstm_t300", CEIL + "lstm_t300_x2", CEIL + "rlstm_t300_x2", PM + "plstm_t300",
    DELAY + "rlstm_t300_noise", DELAY + "rlstm_t300_seed1", DELAY + "rlstm_t300", DELAY + "rlstm_t300_fp32_seed1",
    F3 + "lstm_t300_128",
    F3 + "rlstm_t300_28", GAP + "baseline"}


def test_the_gpu_table_is_its_bench_file():
    for model in GPU_ROWS:
        cells = " | ".join(f"{gpu(model, T):.1f} / {gpu(model, T, 'peak_mib'):.0f}" for T in (784, 1024, 4096, 16384))
        assert f"| {model} | {cells} |" in (DOCS / "performance.md").read_text(), model
    for name in (GPU, GPU_TF32):
        assert {(r["device"], r["precision"], r["batch"]) for r in json.loads((DOCS / name).read_text())} == {
            ("NVIDIA H200", "fp32", 128)}


def test_the_cuda_test_counts_are_their_logs():
    assert "4 failed, 6 passed" in (DOCS / "gpu-slice-cudnn-tf32.log").read_text()
    assert "10 passed" in (DOCS / "gpu-tests-ieee.txt").read_text()
    assert "4 of the 10 CUDA tests failed" in _prose("performance.md") and "all 10 pass" in _prose("performance.md")


@pytest.mark.parametrize("doc,fragment,values", CLAIMS, ids=[c[1][:40] for c in CLAIMS])
def test_a_number_in_the_prose_is_its_source_value(doc, fragment, values):
    assert " ".join(fragment.format(*values()).split()) in _prose(doc)


@pytest.mark.parametrize("cell,machine", sorted(MACHINES.items()))
def test_a_cell_ran_on_the_machine_the_prose_names(cell, machine):
    assert machine in summary(cell)["device"]


def test_every_resumed_cell_is_named():
    resumed = {f"{e}/{p.name}" for e in EXPERIMENTS for p in (RESULTS / e).iterdir()
               if (p / "metrics.jsonl").exists() and resumes(f"{e}/{p.name}")}
    assert resumed == RESUMED


def test_the_cells_the_prose_calls_at_chance_never_leave_it():
    for cell, last in ((F3 + "lstm_t300_56", 1550), (F3 + "lstm_t300_80", 1550), (F3 + "rlstm_t300_80", 400),
                       (F3 + "lstm_full_28", 800), (F3 + "lstm_full_40", 1550), (F3 + "lstm_full_56", 1550),
                       (F3 + "lstm_full_80", 1550), (F3 + "lstm_full_128", 1550), (F3 + "plstm_t300_128", 1550),
                       (F3 + "rlstm_t300_128", 1550), (F3 + "lstm_t300_128", 1550), (DELAY + "lstm_t300_fp32", 1550),
                       (T2 + "lstm_t300", 1100), (T2 + "lstm_t300_fb0", 1550), (T2 + "lstm_t300_seed1", 1550),
                       (CEIL + "lstm_t300_x2", 2600), (CEIL + "ceiling_300", 1550)):
        assert all(a <= 11.35 for s, a in evals(cell).items() if s <= last), cell


def test_the_float32_r_lstm_leads_bf16_at_every_evaluation_from_step_400():
    """Seed 0 from step 400 on, seed 1 at every evaluation."""
    for fp32_cell, bf16_cell, first in (("rlstm_t300", "rlstm_t300_bf16", 400),
                                        ("rlstm_t300_fp32_seed1", "rlstm_t300_seed1", 200)):
        fp32, bf16 = evals(DELAY + fp32_cell), evals(DELAY + bf16_cell)
        assert all(fp32[s] > bf16[s] for s in fp32 if s >= first) and fp32.keys() == bf16.keys(), fp32_cell


def test_both_float32_r_lstms_still_climb_at_the_end():
    for cell in ("rlstm_t300", "rlstm_t300_fp32_seed1"):
        curve = [a for _, a in sorted(evals(DELAY + cell).items())]
        assert curve[-1] > curve[-2], cell


def test_the_window_holds_no_label_in_the_delay_data():
    for fill in ("blank", "noise"):
        path = f"delay-mnist-cpu/window_probe_{fill}.txt"
        assert "T = 1100" in (RESULTS / path).read_text()
        assert max(probe(path, LINEAR), probe(path, MLP)) < 11.5, fill


def test_the_gap_baseline_is_the_published_p_lstm_cell_of_the_same_machine():
    """The plstm-gap-cpu baseline repeats fig5-mnist-cpu's p-LSTM on the same CPU: one curve at every shared step."""
    mine, published = evals(GAP + "baseline", "val_acc"), evals(F5 + "plstm_t300", "val_acc")
    shared = sorted(set(mine) & set(published))
    assert shared == [200, 400, 600]
    assert [mine[s] for s in shared] == [published[s] for s in shared]
