"""`auxrnn bench` end to end on tiny sizes: the table and the JSON records."""
import json

import pytest

from auxrnn.cli import main


@pytest.mark.slow
def test_bench_writes_one_record_per_case_with_the_promised_keys(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main(["bench", "--models", "lstm-t300,rlstm-20x30", "--lengths", "64,128", "--batch", "2",
                 "--steps", "1", "--device", "cpu", "--precisions", "fp32", "--json", str(out)])
    assert code == 0
    records = json.loads(out.read_text())
    assert [(r["model"], r["T"]) for r in records] == [("lstm-t300", 64), ("lstm-t300", 128),
                                                       ("rlstm-20x30", 64), ("rlstm-20x30", 128)]
    for r in records:
        assert {"model", "T", "batch", "device", "step_ms", "peak_mib"} <= set(r)
        assert r["batch"] == 2 and r["device"] == "cpu" and r["step_ms"] > 0
    assert "rlstm-20x30" in capsys.readouterr().out


def test_bench_refuses_unknown_models_and_bad_lengths(capsys):
    assert main(["bench", "--models", "nope", "--lengths", "64", "--device", "cpu"]) == 2
    assert "unknown bench model 'nope'" in capsys.readouterr().err
    assert main(["bench", "--lengths", "a,b", "--device", "cpu"]) == 2
    assert "--lengths must be comma-separated integers" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_concurrent_copies_take_their_share_of_the_cores_and_sum_their_rates(tmp_path, monkeypatch):
    from auxrnn.train.cpu import core_budget

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    out = tmp_path / "bench.json"
    assert main(["bench", "--models", "lstm-t300", "--lengths", "32", "--batch", "2", "--steps", "2",
                 "--device", "cpu", "--concurrent", "2", "--threads", "0,3", "--precisions", "fp32",
                 "--json", str(out)]) == 0
    auto, forced = json.loads(out.read_text())
    assert auto["concurrent"] == forced["concurrent"] == 2 and len(auto["copies"]) == 2
    assert auto["threads"] == max(1, core_budget().usable // 2) and forced["threads"] == 3
    for rec in (auto, forced):
        assert rec["steps_per_s"] == round(sum(c["steps_per_s"] for c in rec["copies"]), 3)
        assert rec["step_ms"] == round(sum(c["step_ms"] for c in rec["copies"]) / 2, 2)


@pytest.mark.slow
def test_bench_plot_draws_the_cost_panel_from_saved_records(tmp_path, capsys):
    out, png = tmp_path / "bench.json", tmp_path / "cost.png"
    assert main(["bench", "--models", "lstm-full,lstm-t300", "--lengths", "24,48", "--batch", "2", "--steps", "1",
                 "--device", "cpu", "--precisions", "fp32", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert main(["bench", "--from", str(out), "--plot", str(png)]) == 0
    again = capsys.readouterr().out
    assert png.stat().st_size > 5000
    rows = lambda text: [line for line in text.splitlines() if line.startswith("lstm-")]  # noqa: E731
    assert rows(again) == rows(printed) and len(rows(again)) == 4  # the same table, nothing measured again


@pytest.mark.slow
def test_bench_inference_case_and_the_speedup_over_full_bptt(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--models", "lstm-full,lstm-t300,lstm-infer", "--lengths", "48", "--batch", "2",
                 "--steps", "1", "--device", "cpu", "--precisions", "fp32", "--json", str(out)]) == 0
    full, t300, infer = json.loads(out.read_text())
    assert [r["model"] for r in (full, t300, infer)] == ["lstm-full", "lstm-t300", "lstm-infer"]
    assert full["vs_full"] == 1.0
    for r in (t300, infer):
        assert r["vs_full"] == round(full["step_ms"] / r["step_ms"], 2)
    assert "vs full" in capsys.readouterr().out


def test_speedups_pair_records_only_within_the_same_length_batch_device_and_copies():
    from auxrnn.bench import add_speedups

    recs = [{"model": "lstm-full", "T": 100, "batch": 4, "device": "cpu", "step_ms": 90.0},
            {"model": "lstm-t300", "T": 100, "batch": 4, "device": "cpu", "step_ms": 30.0},
            {"model": "lstm-t300", "T": 200, "batch": 4, "device": "cpu", "step_ms": 30.0},
            {"model": "lstm-t300", "T": 100, "batch": 8, "device": "cpu", "step_ms": 30.0},
            {"model": "lstm-t300", "T": 100, "batch": 4, "device": "cpu", "step_ms": None, "status": "oom"}]
    add_speedups(recs)
    assert [r.get("vs_full") for r in recs] == [1.0, 3.0, None, None, None]


@pytest.mark.slow
def test_bench_measures_both_precisions_and_names_the_cpus_bf16_support(tmp_path, capsys):
    from auxrnn.train.precision import describe
    import torch

    out = tmp_path / "bench.json"
    assert main(["bench", "--models", "rlstm-1x600-cpu", "--lengths", "700", "--batch", "2", "--steps", "1",
                 "--device", "cpu", "--json", str(out)]) == 0
    records = json.loads(out.read_text())
    assert [r["precision"] for r in records] == ["fp32", "bf16"]
    assert all(r["step_ms"] > 0 for r in records)
    assert f"# bf16: {describe('auto', torch.device('cpu'))}" in capsys.readouterr().out
    assert main(["bench", "--precisions", "fp16", "--device", "cpu"]) == 2
    assert "--precisions takes fp32 and/or bf16" in capsys.readouterr().err
