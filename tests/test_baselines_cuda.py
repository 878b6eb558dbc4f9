"""Baselines on CUDA: CPU numbers, flash / memory-efficient attention, a real OOM. Skipped without a GPU."""
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from auxrnn.memory import run_guarded, sweep_lengths
from auxrnn.models import ModelConfig, TransformerClassifier, build_model, matched_transformer_config
from auxrnn.train import precision

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _pair(arch, **kw):
    torch.manual_seed(0)
    cpu = build_model(arch, kw)
    gpu = build_model(arch, kw).cuda()
    gpu.load_state_dict(cpu.state_dict())
    return cpu, gpu


@cuda
@pytest.mark.cuda
@pytest.mark.parametrize("arch,phase", [("transformer", "train"), ("sa-lstm", "pretrain"), ("lm-lstm", "pretrain")])
def test_cuda_step_has_the_cpu_gradients(arch, phase):
    kw = dict(d_model=64, n_layers=2, dropout=0.0) if arch == "transformer" else dict(aux_truncate=20, subseq_len=40)
    cpu, gpu = _pair(arch, **kw)
    x = torch.randint(0, 256, (5, 120), dtype=torch.uint8)
    lengths, y = torch.tensor([120, 77, 120, 3, 50]), torch.randint(0, 10, (5,))
    out_c = cpu(x, lengths, y, phase=phase)
    out_c.loss.backward()
    with precision.kernels("fp32", torch.device("cuda")):  # as a float32 training step runs: no TF32
        out_g = gpu(x.cuda(), lengths, y.cuda(), phase=phase)
        out_g.loss.backward()
    torch.testing.assert_close(out_g.loss.cpu(), out_c.loss, rtol=1e-4, atol=1e-5)
    for (name, pc), pg in zip(cpu.named_parameters(), gpu.parameters()):
        if pc.grad is not None:
            torch.testing.assert_close(pg.grad.cpu(), pc.grad, rtol=1e-3, atol=1e-5, msg=name)


@cuda
@pytest.mark.cuda
@pytest.mark.parametrize("padded", [False, True])
def test_transformer_bf16_uses_the_fused_attention_kernels(padded):
    model = TransformerClassifier(matched_transformer_config(ModelConfig())).cuda()
    x = torch.randint(0, 256, (8, 784), dtype=torch.uint8, device="cuda")
    lengths = torch.tensor([784, 500] * 4) if padded else torch.full((8,), 784)
    y = torch.randint(0, 10, (8,), device="cuda")
    kernel = SDPBackend.EFFICIENT_ATTENTION if padded else SDPBackend.FLASH_ATTENTION  # no math fallback allowed
    with sdpa_kernel([kernel]), torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(x, lengths, y)
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@cuda
@pytest.mark.cuda
def test_a_real_cuda_oom_becomes_a_row():
    def make_and_run(T):
        return {"bytes": torch.empty(T, dtype=torch.uint8, device="cuda").numel()}

    rows = sweep_lengths(make_and_run, [1 << 20, 1 << 52, 1 << 21])
    assert [r["status"] for r in rows] == ["ok", "oom", "ok"]
    assert "OutOfMemoryError" in rows[1]["error"]
    assert run_guarded(torch.ones, 4, device="cuda")[1] is None
