"""What the CPU-scale cells need: bf16 autocast on a CPU, a fixed training subset scored at each evaluation,
sequences cut to their last K steps (the window's ceiling), and evaluation that never moves training."""
from __future__ import annotations

import json

import pytest
import torch

from auxrnn import reproduce
from auxrnn.cli import main
from auxrnn.data import load_dataset
from auxrnn.data.sequences import LastSteps
from auxrnn.train import batches, precision
from conftest import SAME_THREADS, ckpt_of, tiny_args

TINY = tiny_args(32, 7)


def _records(run, kind):
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("examples_per_s", "eval_seconds", "peak_mem_mib")}
            for r in rows if r["kind"] == kind]


def test_auto_precision_follows_the_cpus_bf16_instructions(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ("avx512_bf16",))
    assert precision.resolve("auto", cpu) == "bf16"
    assert precision.describe("auto", cpu) == "bf16 (auto: CPU has avx512_bf16)"
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ())
    assert precision.resolve("auto", cpu) == "fp32"
    assert precision.describe("auto", cpu) == "fp32 (auto: no native bf16 on this CPU)"
    assert precision.resolve("bf16", cpu) == "bf16" and precision.resolve("fp32", cpu) == "fp32"


def test_cpu_flags_are_read_from_cpuinfo(tmp_path, monkeypatch):
    import builtins

    fake = tmp_path / "cpuinfo"
    fake.write_text("processor\t: 0\nmodel name\t: X\nflags\t\t: fpu avx2 avx512f amx_bf16 avx512_bf16\n")
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda p, *a, **k: real_open(fake if p == "/proc/cpuinfo" else p, *a, **k))
    precision.cpu_bf16_flags.cache_clear()
    try:
        assert precision.cpu_bf16_flags() == ("avx512_bf16", "amx_bf16")
    finally:
        precision.cpu_bf16_flags.cache_clear()


@pytest.mark.determinism
def test_a_bf16_run_computes_in_bf16_and_resumes_bit_for_bit(tmp_path, monkeypatch):
    """bf16 autocast on a CPU changes the numbers (so it really runs), and a resume stays exact in it. A
    resume keeps the precision its checkpoint was written in, even where "auto" would now choose fp32."""
    args = [*TINY, "train.pretrain_steps=2", "train.steps=4", "train.checkpoint_every=2", SAME_THREADS]
    fp32, straight, sliced = tmp_path / "fp32", tmp_path / "straight", tmp_path / "sliced"
    assert main(["train", *args, "train.precision=fp32", f"train.out={fp32}"]) == 0
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ("avx512_bf16",))
    assert main(["train", *args, "train.precision=auto", f"train.out={straight}"]) == 0
    assert main(["train", *args, "train.precision=auto", f"train.out={sliced}", "--until-step", "3"]) == 0
    assert ckpt_of(sliced)["precision"] == "bf16"
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ())  # "another machine": auto would be fp32 now
    assert main(["train", "--resume", str(sliced)]) == 0
    a, b, c = ckpt_of(straight), ckpt_of(sliced), ckpt_of(fp32)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert not all(torch.equal(a["model"][k], c["model"][k]) for k in a["model"])
    summary = json.loads((straight / "summary.json").read_text())
    assert summary["precision"] == "bf16" and json.loads((fp32 / "summary.json").read_text())["precision"] == "fp32"
    assert _records(sliced, "train") == _records(straight, "train")


def test_the_onednn_probe_tells_whether_autocast_can_run_an_lstm_and_the_context_runs_it_either_way():
    """On x86 without AVX-512 oneDNN has no bf16 LSTM and raw autocast raises; `precision.autocast` must not."""
    lstm, x = torch.nn.LSTM(3, 4, batch_first=True), torch.randn(2, 5, 3)
    if torch.backends.mkldnn.is_available():
        if precision.onednn_bf16_lstm():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                lstm(x)
        else:
            with pytest.raises(RuntimeError), torch.autocast("cpu", dtype=torch.bfloat16):
                lstm(x)
    with precision.autocast("bf16", torch.device("cpu")):
        out, _ = lstm(x)
        assert torch.nn.Linear(4, 2)(out).dtype == torch.bfloat16
    assert torch.backends.mkldnn.enabled == torch.backends.mkldnn.is_available()


def test_a_float32_gpu_step_runs_cudnn_in_ieee_float32_and_restores_the_flags():
    """cuDNN's LSTM computes float32 in TF32 by default; a "fp32" step must not. The flags are global, not the
    GPU's, so this runs on any machine."""
    cudnn = torch.backends.cudnn
    new_api = all(hasattr(getattr(cudnn, f, None), "fp32_precision") for f in ("conv", "rnn"))
    read = (lambda: (cudnn.conv.fp32_precision, cudnn.rnn.fp32_precision)) if new_api else (lambda: cudnn.allow_tf32)
    before = read()
    with precision.autocast("fp32", torch.device("cuda")):
        assert read() == (("ieee", "ieee") if new_api else False)
    assert read() == before
    for resolved, device in (("fp32", "cpu"), ("bf16", "cpu")):
        with precision.autocast(resolved, torch.device(device)):
            assert read() == before


def test_a_training_step_runs_its_backward_inside_the_kernel_context(tmp_path, monkeypatch):
    """cuDNN reads its TF32 flag again in the backward pass: the float32 context must cover it, not only the forward."""
    import contextlib

    depth, seen = [0], []

    @contextlib.contextmanager
    def recording(resolved, device):
        depth[0] += 1
        try:
            yield
        finally:
            depth[0] -= 1

    real = torch.autograd.backward
    monkeypatch.setattr(precision, "kernels", recording)
    monkeypatch.setattr(torch.autograd, "backward", lambda *a, **k: (seen.append(depth[0]), real(*a, **k))[1])
    assert main(["train", *TINY, "train.pretrain_steps=1", "train.steps=2", f"train.out={tmp_path / 'run'}"]) == 0
    assert len(seen) == 3 and all(seen)  # 1 pretraining + 2 supervised steps


@pytest.mark.determinism
def test_a_bf16_run_without_onednn_bf16_trains_and_differs_from_float32(tmp_path, monkeypatch):
    """The path a CPU without AVX-512 takes (oneDNN off inside each step), forced on whatever CPU runs the test."""
    monkeypatch.setattr(precision, "onednn_bf16_lstm", lambda: False)
    args = [*TINY, "train.pretrain_steps=2", "train.steps=4", SAME_THREADS]
    fp32, bf16 = tmp_path / "fp32", tmp_path / "bf16"
    assert main(["train", *args, "train.precision=fp32", f"train.out={fp32}"]) == 0
    assert main(["train", *args, "train.precision=bf16", f"train.out={bf16}"]) == 0
    a, b = ckpt_of(fp32), ckpt_of(bf16)
    assert b["precision"] == "bf16" and not all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert torch.backends.mkldnn.enabled == torch.backends.mkldnn.is_available()


@pytest.mark.determinism
def test_evaluating_more_often_or_on_a_training_subset_changes_no_training_number(tmp_path):
    """eval_every 200 instead of 100 in the CPU cells, and the Fig. 5 training subset, are free of side effects."""
    base = [*TINY, "train.pretrain_steps=2", "train.steps=6", "model.dropout=0.2", SAME_THREADS]
    sparse, dense = tmp_path / "sparse", tmp_path / "dense"
    assert main(["train", *base, "train.eval_every=4", f"train.out={sparse}"]) == 0
    assert main(["train", *base, "train.eval_every=2", "train.train_eval_size=10", f"train.out={dense}"]) == 0
    assert _records(sparse, "train") == _records(dense, "train")
    assert json.loads((sparse / "summary.json").read_text())["param_sha256"] == \
        json.loads((dense / "summary.json").read_text())["param_sha256"]
    evals = _records(dense, "eval")
    assert [e["step"] for e in evals] == [2, 4, 6, 8]
    assert all(e["train_eval_count"] == 10 and 0 <= e["train_eval_acc"] <= 100 for e in evals)
    assert all("train_eval_acc" not in e for e in _records(sparse, "eval"))
    summary = json.loads((dense / "summary.json").read_text())
    assert summary["train_eval_count"] == 10 and summary["train_eval_accuracy"] == evals[-1]["train_eval_acc"]


def test_the_training_subset_is_fixed_whatever_the_seed_and_never_larger_than_the_split():
    ds = list(range(100))
    a, b = batches.fixed_subset(ds, 10), batches.fixed_subset(ds, 10)
    assert a.indices == b.indices == sorted(a.indices) and len(set(a.indices)) == 10
    assert batches.fixed_subset(ds, 0) is None and batches.fixed_subset(ds, 500) is ds


def test_keep_last_cuts_every_sequence_to_its_last_steps(tmp_path, capsys):
    ds = load_dataset("copy", "train", length=30, size=4)
    cut = LastSteps(ds, 12)
    x, y = cut[1]
    full, y_full = ds[1]
    assert torch.equal(torch.as_tensor(x), torch.as_tensor(full)[-12:]) and y == y_full
    assert cut.info.seq_len == 12 and len(cut) == 4 and LastSteps(ds, 99)[0][0].shape[0] == 30
    with pytest.raises(ValueError, match="keep at least one step"):
        LastSteps(ds, 0)
    # --check sees the cut length: an auxiliary subsequence longer than 12 steps no longer fits.
    assert main(["train", "--check", *TINY, "train.steps=1", "data.keep_last=12"]) == 0
    assert main(["train", "--check", *TINY, "train.steps=1", "data.keep_last=8"]) == 2
    assert "model.subseq_len=10 is longer than the sequences" in capsys.readouterr().err
    run = tmp_path / "run"
    assert main(["train", *TINY, "data.keep_last=12", "train.steps=2", f"train.out={run}"]) == 0
    assert json.loads((run / "summary.json").read_text())["status"] == "finished"
    assert main(["train", "--check", *TINY, "train.steps=1", "data.keep_last=-1"]) == 2
    assert "data.keep_last=-1 is invalid" in capsys.readouterr().err


def test_the_cpu_experiments_share_runs_and_settings():
    fig4 = {c.id: c for c in reproduce.get("fig4-mnist-cpu").cells}
    assert fig4["rlstm_t300"].run == "table2-mnist-cpu/rlstm_t300"  # the published cell, reused
    assert {c.overrides.get("model.truncate") for c in fig4.values()} == {None, 100, 50, 1, 0}
    assert {c.run for c in fig4.values() if c.column == "reference line"} == {"table2-mnist-cpu/lstm_full",
                                                                              "table2-mnist-cpu/lstm_t300"}
    for name in ("fig4-mnist-cpu", "fig5-mnist-cpu", "table2-pmnist-cpu", "ceiling-mnist-cpu"):
        for c in reproduce.get(name).cells:
            if (c.run or "").startswith("table2-mnist-cpu/"):  # Fig. 4's reference lines: the published runs
                continue
            assert {k: c.overrides[k] for k in reproduce.CPU_CELL} == reproduce.CPU_CELL, (name, c.id)
    assert {c.overrides["data.name"] for c in reproduce.get("table2-pmnist-cpu").cells} == {"pmnist"}
    ceiling = {c.id: c for c in reproduce.get("ceiling-mnist-cpu").cells}
    assert ceiling["ceiling_300"].overrides["data.keep_last"] == 300
    totals = {cid: c.overrides.get("train.pretrain_steps", 0) + c.overrides.get("train.steps", 0)
              for cid, c in ceiling.items()}
    assert totals == {"ceiling_300": 0, "ceiling_300_x2": 3100, "lstm_t300_x2": 3100, "rlstm_t300_x2": 3100}


def _fake_run(folder, test_acc, evals):
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({"status": "finished", "test_accuracy": test_acc, "steps": 1550,
                                                     "epochs": 3.6, "seed": 0, "device": "cpu"}))
    (folder / "config.yaml").write_text("data:\n  batch_size: 128\n")
    (folder / "metrics.jsonl").write_text("".join(json.dumps({"kind": "eval", **e}) + "\n" for e in evals))


def test_figure_4_and_5_are_drawn_from_run_folders(tmp_path, capsys):
    from auxrnn.reproduce.report import _bptt, plot_curves

    assert [_bptt(c) for c in ("BPTT 300", "BPTT 1", "no supervised BPTT", "reference line")] == [300, 1, 0, None]
    for name in ("fig4-mnist-cpu", "fig5-mnist-cpu"):
        assert plot_curves(name, tmp_path) is None  # nothing run yet: no figure
    for name in ("fig4-mnist-cpu", "fig5-mnist-cpu"):
        exp = reproduce.get(name)
        for i, cell in enumerate(exp.cells):
            folder = reproduce.cell_dir(exp, cell, tmp_path)
            if not folder.exists():  # a cell two experiments share is faked once
                evals = [{"step": s, "test_acc": 20.0 + i + s / 100, "train_eval_acc": 25.0 + s / 100}
                         for s in (200, 400)]
                _fake_run(folder, 30.0 + i, evals)
    for name in ("fig4-mnist-cpu", "fig5-mnist-cpu"):
        png = plot_curves(name, tmp_path, tmp_path / f"{name}.png")
        assert png.stat().st_size > 10_000
    results = tmp_path / "results.md"
    assert main(["reproduce", "fig4-mnist-cpu", "--collect", "--out", str(tmp_path), "--results", str(results)]) == 0
    table = results.read_text()
    assert "| rlstm_t0 | r-LSTM | no supervised BPTT | 34.00 |" in table and "| lstm_t300 | LSTM Truncate300 |" in table
    # Fig. 5's question as numbers: train, test and gap per cell at each evaluation step.
    fig5 = reproduce.markdown_table("fig5-mnist-cpu", tmp_path)
    assert "| step | LSTM Full BP: train | test | gap | r-LSTM Truncate300: train | test | gap |" in fig5
    by_step = {line.split(" | ")[0]: line for line in fig5.splitlines() if line.startswith("| 400 ")}
    assert by_step["| 400"] == "| 400 | 29.00 | 24.00 | +5.00 | 29.00 | 25.00 | +4.00 | 29.00 | 26.00 | +3.00 |"
    assert "gap" not in reproduce.markdown_table("fig4-mnist-cpu", tmp_path)


def test_a_model_drawn_twice_is_told_apart_by_its_column(tmp_path):
    from auxrnn.reproduce.report import collect, curve_labels

    labels = curve_labels(collect("ceiling-mnist-cpu", tmp_path))
    assert labels == ["LSTM on the last 300 pixels (window ceiling), 1550 steps",
                      "LSTM on the last 300 pixels (window ceiling), 3100 steps",
                      "LSTM Truncate300", "r-LSTM Truncate300"]
    assert len(set(curve_labels(collect("table2-mnist-cpu", tmp_path)))) == len(reproduce.get("table2-mnist-cpu").cells)


def test_the_onednn_probe_leaves_the_random_stream_alone():
    precision.onednn_bf16_lstm.cache_clear()
    torch.manual_seed(0)
    precision.onednn_bf16_lstm()
    after = torch.rand(3)
    torch.manual_seed(0)
    assert torch.equal(after, torch.rand(3))


def test_the_length_experiments_are_what_the_issue_set():
    """delay-mnist-cpu: T = 1100 with the label before the Truncate300 window; fig3-mnist-cpu: five lengths,
    every one in bf16."""
    from auxrnn.data import static_info

    delay = {c.id: c for c in reproduce.get("delay-mnist-cpu").cells}
    assert set(delay) == {"rlstm_t300", "rlstm_t300_seed1", "lstm_t300", "lstm_t300_seed1", "lstm_full",
                          "rlstm_t300_noise", "rlstm_t300_bf16", "lstm_t300_fp32", "rlstm_t300_fp32_seed1"}
    for c in delay.values():
        options = {"delay": c.overrides["data.options.delay"]}
        assert static_info("mnist", options).seq_len == 1100 and 1100 - 300 >= 784  # the window holds no pixel
    assert delay["rlstm_t300_noise"].overrides["data.options.delay_fill"] == "noise"
    precision = {k: c.overrides.get("train.precision", "fp32") for k, c in delay.items()}
    assert {k for k, p in precision.items() if p == "fp32"} == {"rlstm_t300", "lstm_t300_fp32", "rlstm_t300_fp32_seed1"}
    fig3 = reproduce.get("fig3-mnist-cpu").cells
    lengths = {c.column for c in fig3}
    assert lengths == {"T=784", "T=1600", "T=3136", "T=6400", "T=16384"}
    for c in fig3:  # one precision at every length: no float32 cell is reused at T = 784
        side = c.overrides["data.options.side"]
        assert c.column == f"T={side * side}" == f"T={static_info('mnist', {'side': side}).seq_len}"
        assert c.run is None and c.overrides["train.precision"] == "bf16"
    assert {c.column for c in fig3 if c.row == "p-LSTM Truncate300"} == {"T=3136", "T=16384"}


def test_figure_3_is_drawn_with_its_cost_panel(tmp_path):
    from auxrnn.reproduce.report import _length, plot_curves

    assert [_length(c) for c in ("T=784", "T=16384", "BPTT 1")] == [784, 16384, None]
    exp = reproduce.get("fig3-mnist-cpu")
    assert plot_curves(exp.name, tmp_path) is None
    for i, cell in enumerate(exp.cells):
        _fake_run(reproduce.cell_dir(exp, cell, tmp_path), 20.0 + i, [{"step": 200, "test_acc": 15.0}])
    bench = [{"model": m, "T": t, "batch": 128, "device": "cpu", "step_ms": 100.0 * t / 784, "peak_mib": 500.0,
              "threads": 1, "precision": "fp32"} for m in ("rlstm-1x600-cpu", "lstm-t300") for t in (784, 16384)]
    (tmp_path / exp.name / "bench.json").write_text(json.dumps(bench))
    png = plot_curves(exp.name, tmp_path, tmp_path / "fig3.png")
    assert png.stat().st_size > 10_000


def test_figure_3_gives_a_method_one_colour_in_both_panels(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from auxrnn.reproduce.report import _draw_cost, _draw_length, collect

    exp = reproduce.get("fig3-mnist-cpu")
    for i, cell in enumerate(exp.cells):
        _fake_run(reproduce.cell_dir(exp, cell, tmp_path), 20.0 + i, [{"step": 200, "test_acc": 15.0}])
    models = ("rlstm-1x600-cpu", "plstm-1x600-cpu", "lstm-t300", "lstm-infer", "lstm-full", "transformer", "mine")
    bench = [{"model": m, "T": 784, "batch": 128, "device": "cpu", "step_ms": 100.0, "peak_mib": 500.0,
              "threads": 1, "precision": "fp32"} for m in models]
    (tmp_path / "bench.json").write_text(json.dumps(bench))
    fig, (ax, ax_time, ax_mem) = plt.subplots(3)
    _draw_length(ax, collect(exp.name, tmp_path))
    _draw_cost(ax_time, ax_mem, tmp_path / "bench.json")
    accuracy = {line.get_label(): matplotlib.colors.to_hex(line.get_color()) for line in ax.get_lines()}
    cost = {line.get_label().removesuffix(" (fp32)"): matplotlib.colors.to_hex(line.get_color())
            for line in ax_time.get_lines()}
    plt.close(fig)
    assert accuracy == {"r-LSTM Truncate300": cost["rlstm-1x600-cpu"], "LSTM Truncate300": cost["lstm-t300"],
                        "p-LSTM Truncate300": cost["plstm-1x600-cpu"], "LSTM Full BP": cost["lstm-full"]}
    assert len(set(cost.values())) == len(models)  # no two methods share a colour, a model not listed included


def test_figure_3_names_the_machine_of_a_point_that_ran_elsewhere(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from auxrnn.reproduce.report import _draw_length, _machine, collect

    assert _machine("cpu (AMD EPYC, 1 thread)") == _machine("cpu (AMD EPYC, 2 threads)") == "cpu (AMD EPYC)"
    exp = reproduce.get("fig3-mnist-cpu")
    for i, cell in enumerate(exp.cells):
        _fake_run(reproduce.cell_dir(exp, cell, tmp_path), 20.0 + i, [{"step": 200, "test_acc": 15.0}])
    fig, ax = plt.subplots()
    _draw_length(ax, collect(exp.name, tmp_path))
    assert not ax.texts and not any(line.get_label().startswith("hollow point") for line in ax.get_lines())
    plt.close(fig)

    other = reproduce.cell_dir(exp, next(c for c in exp.cells if c.id == "lstm_full_128"), tmp_path) / "summary.json"
    other.write_text(json.dumps({**json.loads(other.read_text()), "device": "NVIDIA H200"}))
    fig, ax = plt.subplots()
    _draw_length(ax, collect(exp.name, tmp_path))
    hollow = [line for line in ax.get_lines() if line.get_label() == "_another machine"]
    assert [t.get_text() for t in ax.texts] == ["NVIDIA H200"] and len(hollow) == 1
    assert list(zip(*hollow[0].get_data())) == [(16384, json.loads(other.read_text())["test_accuracy"])]
    assert "hollow point: ran on the machine named beside it, not cpu" in [line.get_label() for line in ax.get_lines()]
    plt.close(fig)


def test_the_plstm_gap_cells_change_one_choice_each_and_stop_at_600(tmp_path):
    from auxrnn.reproduce.runner import _is_done, child_command

    exp = reproduce.get("plstm-gap-cpu")
    cells = {c.id: c for c in exp.cells}
    changed = {cid: {k: v for k, v in c.overrides.items() if k != "train.eval_every"} for cid, c in cells.items()}
    assert changed == {"baseline": {}, "predictor_2x256": {"model.aux_hidden": 256, "model.aux_layers": 2},
                       "one_segment": {"model.aux_truncate": 600}, "main_start": {"model.aux_start": "main"}}
    for c in cells.values():
        assert c.preset == "mnist_cpu_plstm_t300" and c.until_step == 600
        argv = child_command(exp, c, tmp_path)
        assert argv[argv.index("--until-step") + 1] == "600"
        assert _is_done({"status": "until_step", "steps": 600}, cell=c)
        assert not _is_done({"status": "until_step", "steps": 400}, cell=c)
    table2 = reproduce.get("table2-mnist-cpu").cells[0]
    assert not _is_done({"status": "until_step", "steps": 600}, cell=table2)  # a whole run is not done at 600
    folder = reproduce.cell_dir(exp, cells["one_segment"], tmp_path)
    _fake_run(folder, 0.0, [{"step": 500, "test_acc": 30.0, "val_acc": 31.0},
                            {"step": 600, "test_acc": 40.0, "val_acc": 41.5}])
    (folder / "summary.json").write_text(json.dumps({"status": "until_step", "steps": 600, "seed": 0}))
    row = [line for line in reproduce.markdown_table(exp.name, tmp_path).splitlines() if "| one_segment |" in line]
    assert "| 41.50 |" in row[0] and "stopped at step 600 as planned" in row[0]
