"""GPU paths: the same step on CUDA as on CPU, and under bf16 autocast. Skipped without a GPU."""
import pytest
import torch

from auxrnn.models import AuxRNN, ModelConfig
from auxrnn.train import precision

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
@pytest.mark.cuda
@pytest.mark.parametrize("aux,truncate", [("reconstruct", 30), ("predict", "full"), ("both", 0)])
def test_cuda_step_has_the_cpu_gradients(aux, truncate):
    torch.manual_seed(0)
    cfg = ModelConfig(aux=aux, truncate=truncate, subseq_len=40, aux_truncate=20, n_anchors=2, chunk=32)
    cpu = AuxRNN(cfg)
    gpu = AuxRNN(cfg).cuda()
    gpu.load_state_dict(cpu.state_dict())
    x = torch.randint(0, 256, (6, 150), dtype=torch.uint8)
    lengths, y = torch.tensor([150, 120, 60, 150, 41, 99]), torch.randint(0, 10, (6,))
    out_c = cpu(x, lengths, y, generator=torch.Generator().manual_seed(1))
    out_c.loss.backward()
    with precision.kernels("fp32", torch.device("cuda")):  # as a float32 training step runs: no TF32
        out_g = gpu(x.cuda(), lengths, y.cuda(), generator=torch.Generator().manual_seed(1))
        out_g.loss.backward()
    torch.testing.assert_close(out_g.loss.cpu(), out_c.loss, rtol=1e-4, atol=1e-5)
    for (name, pc), pg in zip(cpu.named_parameters(), gpu.parameters()):
        torch.testing.assert_close(pg.grad.cpu(), pc.grad, rtol=1e-3, atol=1e-5, msg=name)


@cuda
@pytest.mark.cuda
def test_bf16_autocast_step_runs_and_is_finite():
    model = AuxRNN(ModelConfig(aux="both", truncate=30, subseq_len=40, aux_truncate=20)).cuda()
    x = torch.randint(0, 256, (4, 200), dtype=torch.uint8, device="cuda")
    lengths, y = torch.tensor([200, 150, 30, 200]), torch.randint(0, 10, (4,), device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(x, lengths, y, generator=torch.Generator().manual_seed(0))
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
