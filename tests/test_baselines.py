"""Baselines on the same pipeline: Transformer, SA-LSTM, LM-LSTM, the registry and the OOM guard."""
import pytest
import torch
import torch.nn.functional as F

from auxrnn.memory import is_oom, run_guarded, sweep_lengths
from auxrnn.models import (ARCHS, AuxRNN, ModelConfig, PretrainedLSTMConfig, SequencePretrainedLSTM, StepOutput,
                           TransformerClassifier, TransformerConfig, build_model, can_pretrain, lm_windows,
                           matched_transformer_config, model_config, parameter_report, rnn_parameters,
                           transfer_pretrained, transformer_parameters)

V = 12  # vocabulary of the tiny tasks
SMALL_LSTM = dict(channels=(V,), n_classes=3, embed_dim=8, hidden=12, aux_hidden=10, aux_layers=2, ffn_hidden=16,
                  subseq_len=8, aux_truncate=5, truncate=6, chunk=4)
SMALL_TF = dict(channels=(V,), n_classes=3, d_model=16, n_layers=2, n_heads=2, d_ff=32, dropout=0.0,
                ffn_hidden=16)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: intra-op threads only add synchronisation, which costs ~100x on a loaded 2-core box."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _small(arch, seed=0, **kw):
    torch.manual_seed(seed)
    base = SMALL_TF if arch == "transformer" else SMALL_LSTM
    return build_model(arch, {**base, **kw})


def _task(B=8, T=14, seed=1):
    """Counting sequences x_t = (x_0 + t) mod V with class x_0 mod 3, some of them padded."""
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randint(0, V, (B, 1), generator=g)
    x = (x0 + torch.arange(T)) % V
    lengths = torch.full((B,), T)
    lengths[::3] = T - 5
    return x, lengths, (x0[:, 0] % 3)


# ---------------------------------------------------------------------------------------------- parameters

def test_default_transformer_is_within_10_percent_of_the_rlstm():
    rnn = ModelConfig()  # MNIST defaults: channels (256,), 10 classes, r-LSTM 128 with the 2x256 decoder
    cfg = matched_transformer_config(rnn)
    model = TransformerClassifier(cfg)
    target = AuxRNN(rnn).num_parameters()["total"]
    assert target == 1_549_578
    assert abs(model.num_parameters()["total"] / target - 1) <= 0.10
    assert cfg == TransformerConfig()  # the dataclass defaults are the MNIST match
    rep = parameter_report(rnn)
    assert rep["rnn_total"] == target and rep["transformer"] == model.num_parameters()["total"] == 1_522_314
    assert rep["within_10pct"] and "1,549,578" in rep["text"] and "1,522,314" in rep["text"]


@pytest.mark.parametrize("rnn", [dict(channels=(256, 256, 256)), dict(channels=(257,), n_classes=14),
                                 dict(n_classes=120), dict(aux="predict"), dict(aux="none")])
def test_matching_works_for_every_dataset_shape(rnn):
    rnn = ModelConfig(**rnn)
    cfg = matched_transformer_config(rnn)
    assert cfg.channels == rnn.channels and cfg.n_classes == rnn.n_classes
    assert abs(transformer_parameters(cfg) / AuxRNN(rnn).num_parameters()["total"] - 1) <= 0.10


@pytest.mark.parametrize("kw", [dict(), dict(positions="learned", max_len=50, readout="cls"),
                                dict(encoder="scalar", channels=(3, 5), d_ff=20, n_layers=3)])
def test_parameter_formula_matches_the_module(kw):
    cfg = TransformerConfig(**{**SMALL_TF, **kw})
    assert transformer_parameters(cfg) == sum(p.numel() for p in TransformerClassifier(cfg).parameters())


@pytest.mark.parametrize("kw", [dict(aux=a, cell=c) for a in ("reconstruct", "predict", "both", "none")
                                for c in ("lstm", "gru")] + [dict(encoder="scalar", channels=(3, 5), aux_layers=3)])
def test_rnn_parameter_formula_matches_the_module(kw):
    cfg = ModelConfig(**{**SMALL_LSTM, **kw})
    assert rnn_parameters(cfg) == AuxRNN(cfg).num_parameters()  # the matched Transformer's target, unbuilt


def test_matching_respects_overrides_and_refuses_the_impossible():
    cfg = matched_transformer_config(ModelConfig(), n_layers=4, positions="learned", max_len=784)
    assert cfg.n_layers == 4 and cfg.positions == "learned" and cfg.max_len == 784
    assert abs(transformer_parameters(cfg) / 1_549_578 - 1) <= 0.10
    with pytest.raises(ValueError, match="within 10%"):  # a 16384 x 64 position table alone is ~1M parameters
        matched_transformer_config(ModelConfig(), positions="learned", max_len=100_000)
    with pytest.raises(ValueError, match="unknown Transformer option"):
        matched_transformer_config(ModelConfig(), depth=3)


# ---------------------------------------------------------------------------------------------- transformer

@pytest.mark.parametrize("readout", ["mean", "cls"])
@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
def test_padding_does_not_change_transformer_outputs(readout, positions):
    model = _small("transformer", readout=readout, positions=positions, max_len=40).double().eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, V, (3, 9), generator=g)
    lengths = torch.tensor([9, 6, 2])
    ref = model.predict(x, lengths)
    longer = torch.cat([x, torch.zeros(3, 31, dtype=torch.long)], dim=1)  # T = 40, other tokens in the padding
    for b, n in enumerate(lengths.tolist()):
        longer[b, n:] = torch.randint(0, V, (40 - n,), generator=g)
    torch.testing.assert_close(model.predict(longer, lengths), ref, rtol=1e-10, atol=1e-12)
    alone = torch.cat([model.predict(x[b:b + 1, :n], torch.tensor([n])) for b, n in enumerate(lengths.tolist())])
    torch.testing.assert_close(alone, ref, rtol=1e-10, atol=1e-12)


def test_transformer_refuses_pretraining_and_returns_the_supervised_loss():
    model = _small("transformer")
    x, lengths, y = _task()
    with pytest.raises(ValueError, match="no auxiliary loss"):
        model(x, lengths, y, phase="pretrain")
    with pytest.raises(ValueError, match="needs labels"):
        model(x, lengths)
    out = model(x, lengths, y, aux_weight=5.0)
    assert isinstance(out, StepOutput) and out.aux_loss is None and out.loss is out.sup_loss
    assert out.logits.shape == (8, 3) and not out.logits.requires_grad
    torch.testing.assert_close(out.loss, F.cross_entropy(model.predict(x, lengths), y))
    assert not can_pretrain(model)


def test_activation_checkpointing_gives_the_same_gradients():
    x, lengths, y = _task()
    grads = []
    for ckpt in (False, True):
        model = _small("transformer", checkpoint=ckpt, dropout=0.1).double()
        torch.manual_seed(5)  # the same dropout masks; checkpoint replays them in backward
        model(x, lengths, y).loss.backward()
        grads.append([p.grad for p in model.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_transformer_learned_positions_refuse_longer_sequences():
    model = _small("transformer", positions="learned", max_len=10)
    with pytest.raises(ValueError, match="max_len=10"):
        model.predict(torch.zeros(1, 11, dtype=torch.long), torch.tensor([11]))


def test_transformer_runs_in_bf16_autocast():
    model = _small("transformer", readout="cls")
    x, lengths, y = _task()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x.to(torch.uint8), lengths, y)
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert model.layers[0].attn.qkv.weight.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------------- training

@pytest.mark.parametrize("arch,phase", [("transformer", "train"), ("sa-lstm", "pretrain"), ("lm-lstm", "pretrain"),
                                        ("sa-lstm", "train"), ("lm-lstm", "train")])
def test_each_baseline_learns_a_tiny_batch(arch, phase):
    model = _small(arch)
    x, lengths, y = _task()
    opt = torch.optim.Adam(model.parameters(), lr=3e-2)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(20):
        out = model(x, lengths, y if phase == "train" else None, generator=g, phase=phase)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_finetuning_is_the_plain_lstm_step():
    """Phase "train" of SA-/LM-LSTM is AuxRNN(aux="none") with the same truncation, aux_weight ignored."""
    for arch in ("sa-lstm", "lm-lstm"):
        model = _small(arch)
        plain = AuxRNN(ModelConfig(**{**SMALL_LSTM, "aux": "none"}))
        assert transfer_pretrained(model.state_dict(), plain)
        plain.classifier.load_state_dict(model.classifier.state_dict())
        x, lengths, y = _task()
        out = model(x, lengths, y, aux_weight=3.0)
        assert out.aux_loss is None
        torch.testing.assert_close(out.loss, plain(x, lengths, y).loss)
        torch.testing.assert_close(model.predict(x, lengths), plain.predict(x, lengths))


# ---------------------------------------------------------------------------------------------- pretraining losses

def _sa_reference(model, x, lengths):
    """One example at a time: a no-grad read to len-K, a grad window to the end, decode the last L elements."""
    cfg, core, enc = model.cfg, model.core, model.encoder
    x = x.unsqueeze(-1)  # (B, T, C=1): the encoder reads a channel axis
    total, count = 0.0, 0
    for b, n in enumerate(lengths.tolist()):
        s = max(n - cfg.aux_truncate, 0)
        state = core.initial_state(1)
        if s:
            with torch.no_grad():
                _, state = core(enc(x[b:b + 1, :s]), state)
        _, state = core(enc(x[b:b + 1, s:n]), tuple(t.detach() for t in state))
        span = min(n, cfg.subseq_len)
        tokens = x[b:b + 1, n - span:n]
        nll, k = model.pretrainer.decode(core.flatten(state), tokens, torch.ones(1, span - 1, dtype=torch.bool))
        total, count = total + nll, count + k
    return total / count


def _lm_reference(model, x, lengths):
    """One example at a time, window by window, carrying the state and detaching it at each window start."""
    K, core, enc = model.cfg.aux_truncate, model.core, model.encoder
    x = x.unsqueeze(-1)
    total, count = 0.0, 0
    for b, n in enumerate(lengths.tolist()):
        state = core.initial_state(1)
        for s in range(0, n - 1, K):
            w = min(K, n - 1 - s)
            out, state = core(enc(x[b:b + 1, s:s + w]), tuple(t.detach() for t in state))
            total = total + F.cross_entropy(model.pretrainer(out)[0], x[b, s + 1:s + w + 1, 0], reduction="sum")
            count += w
    return total / count


@pytest.mark.parametrize("kind,cell", [("sa", "lstm"), ("lm", "lstm"), ("sa", "gru"), ("lm", "gru")])
@pytest.mark.parametrize("K,chunk", [(5, 4), (4, 8), (7, 7)])
def test_pretraining_losses_and_gradients_match_the_reference(kind, cell, K, chunk):
    torch.manual_seed(0)
    model = SequencePretrainedLSTM(PretrainedLSTMConfig(**{**SMALL_LSTM, "cell": cell, "aux_truncate": K,
                                                           "chunk": chunk, "kind": kind})).double()
    g = torch.Generator().manual_seed(2)
    x = torch.randint(0, V, (5, 23), generator=g)
    lengths = torch.tensor([23, 20, 9, 2, 13])  # multiples of K, shorter than L, shorter than K
    fast = model(x, lengths, phase="pretrain")
    slow = (_sa_reference if kind == "sa" else _lm_reference)(model, x, lengths)
    torch.testing.assert_close(fast.loss, slow, rtol=1e-10, atol=1e-12)
    g_fast = torch.autograd.grad(fast.loss, list(model.parameters()), allow_unused=True)
    g_slow = torch.autograd.grad(slow, list(model.parameters()), allow_unused=True)
    for (name, _), a, b in zip(model.named_parameters(), g_fast, g_slow):
        if a is None or b is None:  # the classifier, which pretraining does not use
            assert a is None and b is None and name.startswith("classifier"), name
            continue
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12, msg=lambda m: f"{name}: {m}")
    assert model.encoder.table.weight.grad is None and any(g is not None and g.abs().sum() > 0 for g in g_fast)


def test_sa_reconstructs_only_the_last_subseq_len_elements_and_truncates_the_main_gradient():
    model = _small("sa-lstm", subseq_len=4, aux_truncate=3)
    OUT = V - 1
    x = torch.full((1, 20), OUT)
    x[0, 17:] = torch.tensor([1, 2, 3])  # the gradient window: the last 3 elements
    out = model(x, torch.tensor([20]), phase="pretrain")
    assert out.aux_tokens == 3  # L - 1 targets of the last L = 4 elements
    out.loss.backward()
    assert model.encoder.table.weight.grad[OUT].abs().max() == 0
    assert model.encoder.table.weight.grad[1:4].abs().sum() > 0


def test_lm_windows_cover_each_input_with_a_successor_once():
    w = lm_windows(torch.tensor([11, 1, 5, 6]), 5)  # inputs with a successor: 10, 0, 4, 5
    assert w.rows.tolist() == [0, 0, 2, 3]
    assert w.start.tolist() == [0, 5, 0, 0]
    assert w.width.tolist() == [5, 5, 4, 5]


def test_lm_pretraining_runs_at_T_5000():
    torch.manual_seed(0)
    model = build_model("lm-lstm", dict(channels=(256,), hidden=16, embed_dim=16, ffn_hidden=16, aux_truncate=300))
    x = torch.randint(0, 256, (2, 5000), dtype=torch.uint8)
    out = model(x, torch.tensor([5000, 4321]), phase="pretrain")
    out.loss.backward()
    assert out.aux_tokens == 4999 + 4320 and torch.isfinite(out.loss)
    assert 5.0 < out.loss.item() < 6.0  # ~ log 256 for an untrained model on uniform bytes


# ---------------------------------------------------------------------------------------------- transfer

@pytest.mark.parametrize("arch", ["sa-lstm", "lm-lstm"])
def test_pretrained_state_loads_into_the_classifier(arch, tmp_path):
    model = _small(arch, seed=0)
    x, lengths, y = _task()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(5):
        opt.zero_grad()
        model(x, lengths, phase="pretrain").loss.backward()
        opt.step()
    torch.save(model.state_dict(), tmp_path / "pretrained.pt")

    fresh = _small(arch, seed=1)
    tuned = _small(arch, seed=1)
    keys = transfer_pretrained(torch.load(tmp_path / "pretrained.pt"), tuned)
    assert {k.split(".")[0] for k in keys} == {"encoder", "core", "pretrainer"}
    for k in keys:
        assert torch.equal(tuned.state_dict()[k], model.state_dict()[k])
    torch.testing.assert_close(tuned.classifier[0].weight, fresh.classifier[0].weight)  # classifier not copied
    assert not torch.allclose(tuned.predict(x, lengths), fresh.predict(x, lengths))

    plain = AuxRNN(ModelConfig(**{**SMALL_LSTM, "aux": "none"}))  # also into a plain LSTM classifier
    prefixed = {f"_orig_mod.{k}": v for k, v in model.state_dict().items()}  # a torch.compile'd source
    assert {k.split(".")[0] for k in transfer_pretrained(prefixed, plain)} == {"encoder", "core"}
    assert torch.equal(plain.core.rnn.weight_hh_l0, model.core.rnn.weight_hh_l0)


def test_transfer_is_strict_on_the_shared_parts():
    src = _small("sa-lstm").state_dict()
    with pytest.raises(ValueError, match="shape mismatch"):
        transfer_pretrained(src, _small("sa-lstm", hidden=14))
    with pytest.raises(ValueError, match="missing"):
        transfer_pretrained({k: v for k, v in src.items() if not k.startswith("core.")}, _small("lm-lstm"))


# ---------------------------------------------------------------------------------------------- registry

def test_registry_builds_every_arch_with_a_serialisable_config():
    for arch in ARCHS:
        model = _small(arch)
        d = model.cfg.to_dict()
        assert d["channels"] == [V] and d["n_classes"] == 3
        again = build_model(arch, d)  # a config dict round-trips
        assert type(again) is type(model) and again.cfg.to_dict() == d
        assert set(model.num_parameters()) == {"main", "auxiliary", "total"}
        out = model(*_task())
        assert out.loss.ndim == 0 and out.logits.shape == (8, 3)
    assert isinstance(build_model("rnn"), AuxRNN) and can_pretrain(build_model("rnn"))
    assert not can_pretrain(build_model("rnn", dict(aux="none")))
    assert build_model("transformer").cfg == TransformerConfig()
    assert build_model("transformer", ModelConfig()).cfg == TransformerConfig()


def test_registry_maps_model_configs_and_refuses_contradictions():
    sa = model_config("sa-lstm", ModelConfig(aux="reconstruct", hidden=64))  # aux is the arch's business
    assert isinstance(sa, PretrainedLSTMConfig) and sa.kind == "sa" and sa.aux == "none" and sa.hidden == 64
    assert model_config("lm-lstm", {"aux": "predict"}).kind == "lm"
    with pytest.raises(ValueError, match="contradicts"):
        model_config("lm-lstm", {"kind": "sa"})
    with pytest.raises(ValueError, match=r"arch\.name='gpt' is invalid: choose one of rnn, transformer"):
        build_model("gpt", {})
    with pytest.raises(ValueError, match="unknown model option"):
        build_model("transformer", {"widht": 3})
    with pytest.raises(ValueError, match="aux"):
        PretrainedLSTMConfig(aux="reconstruct").validate()
    tf = model_config("transformer", {"channels": [257], "n_classes": 14, "hidden": 128, "n_heads": 8})
    assert tf.channels == (257,) and tf.n_classes == 14 and tf.n_heads == 8
    assert model_config("transformer", ModelConfig(dropout=0.2)).dropout == 0.2  # shared with the LSTMs


# ---------------------------------------------------------------------------------------------- OOM guard

def test_run_guarded_turns_out_of_memory_into_a_result():
    def boom(exc):
        raise exc
    assert run_guarded(lambda a, b=1: a + b, 2, b=3) == (5, None)
    for exc in (torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
                RuntimeError("CUDA error: out of memory"),
                RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: "
                             "you tried to allocate 1099511627776 bytes.")):
        result, error = run_guarded(boom, exc)
        assert result is None and type(exc).__name__ in error and is_oom(exc)
    with pytest.raises(RuntimeError, match="shape"):
        run_guarded(boom, RuntimeError("shape mismatch"))
    with pytest.raises(ValueError):
        run_guarded(boom, ValueError("out of memory"))  # only RuntimeErrors (and MemoryError) count


def test_a_real_cpu_allocation_failure_is_caught():
    result, error = run_guarded(torch.empty, 1 << 62, dtype=torch.uint8)
    assert result is None and "alloc" in error.lower()


def test_sweep_records_an_oom_row_and_goes_on():
    seen = []

    def make_and_run(T):
        if T == 2048:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB")
        if T == 4096:
            raise RuntimeError("HIP out of memory")
        return {"step_ms": T / 100}

    rows = sweep_lengths(make_and_run, [1024, 2048, 4096, 512], on_row=seen.append)
    assert [r["status"] for r in rows] == ["ok", "oom", "oom", "ok"]
    assert rows[0] == {"T": 1024, "status": "ok", "step_ms": 10.24} and rows[3]["T"] == 512
    assert rows[1]["T"] == 2048 and "8.00 GiB" in rows[1]["error"]
    assert seen == rows
    rows = sweep_lengths(make_and_run, [1024, 2048, 4096, 512], stop_after_oom=True)
    assert [r["status"] for r in rows] == ["ok", "oom", "skipped", "ok"]


def test_sweep_with_a_real_model_step():
    def make_and_run(T):
        model = _small("transformer")
        x = torch.randint(0, V, (2, T))
        if T > 64:  # stands in for the allocator giving up at long T
            raise RuntimeError("CUDA out of memory. Tried to allocate 1.00 GiB")
        out = model(x, torch.tensor([T, T]), torch.tensor([0, 1]))
        out.loss.backward()
        return {"loss": out.loss.item()}

    rows = sweep_lengths(make_and_run, [16, 128, 32])
    assert [r["status"] for r in rows] == ["ok", "oom", "ok"] and rows[2]["loss"] > 0


def test_docs_show_the_parameter_counts_of_the_code():
    from pathlib import Path

    from auxrnn.models import parameter_table
    docs = Path(__file__).resolve().parents[1] / "docs" / "baselines.md"
    assert parameter_table() in docs.read_text(), "regenerate the table with `python -m auxrnn.models`"
