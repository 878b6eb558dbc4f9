"""Anchors, windows, tokens and memory: the deterministic parts of the spec."""
import torch
from torch.autograd.graph import saved_tensors_hooks

from auxrnn.core.objectives import Predict, Reconstruct
from auxrnn.core.encoders import Encoder
from auxrnn.core.windows import supervised_windows
from auxrnn.models import AuxRNN, ModelConfig


def test_all_256_pixel_values_map_to_distinct_tokens():
    enc = Encoder((256,), 4)
    with torch.no_grad():
        enc.table.weight.copy_(torch.arange(256).double().unsqueeze(1).expand(256, 4))
    pixels = torch.arange(256, dtype=torch.uint8).view(1, 256, 1)
    assert torch.equal(enc(pixels)[0, :, 0], torch.arange(256).float())


def test_anchors_redrawn_each_step_per_example():
    lengths = torch.full((64,), 784)
    g = torch.Generator().manual_seed(0)
    first = Reconstruct(1, 600).sample(lengths, g)
    second = Reconstruct(1, 600).sample(lengths, g)
    assert first.unique().numel() > 30  # differ across examples
    assert not torch.equal(first, second)  # differ across steps


def test_same_seed_gives_same_anchors_and_all_lie_in_range():
    lengths = torch.tensor([784, 700, 300, 1, 2, 601])
    for kind in (Reconstruct, Predict):
        a = kind(20, 600).sample(lengths, torch.Generator().manual_seed(5))
        b = kind(20, 600).sample(lengths, torch.Generator().manual_seed(5))
        assert torch.equal(a, b)
        lo, hi = kind(20, 600).anchor_range(lengths)
        assert bool(((a >= lo[:, None]) & (a <= hi[:, None])).all())


def test_first_window_nonempty_when_T_multiple_of_truncate():
    w = supervised_windows(torch.tensor([600, 300, 900]), 300)
    assert w.width.tolist() == [300, 300, 300]
    assert w.start.tolist() == [300, 0, 600]


def _saved_bytes(model, T, aux):
    torch.manual_seed(0)
    x = torch.randint(0, 256, (2, T), dtype=torch.uint8)
    total = [0]

    def pack(t):
        total[0] += t.numel() * t.element_size()
        return t

    with saved_tensors_hooks(pack, lambda t: t):
        out = model(x, torch.tensor([T, T]), torch.tensor([1, 2]), generator=torch.Generator().manual_seed(1))
    out.loss.backward()
    return total[0]


def test_memory_saved_for_backward_is_identical_for_T_1000_and_8000():
    for aux in ("reconstruct", "predict", "both", "none"):
        model = AuxRNN(ModelConfig(aux=aux, hidden=16, embed_dim=8, aux_hidden=16, ffn_hidden=16,
                                   subseq_len=600, truncate=300, aux_truncate=300, n_anchors=2))
        small, large = _saved_bytes(model, 1000, aux), _saved_bytes(model, 8000, aux)
        assert small == large, (aux, small, large)
    full = AuxRNN(ModelConfig(aux="none", hidden=16, embed_dim=8, ffn_hidden=16, truncate="full"))
    assert _saved_bytes(full, 8000, "none") > 4 * _saved_bytes(full, 1000, "none")  # the O(T) it replaces


def test_main_lstm_runs_once_per_step():
    """The main core reads each position at most once outside the gradient windows (no second full pass)."""
    T, chunk = 2000, 256
    model = AuxRNN(ModelConfig(aux="reconstruct", hidden=8, embed_dim=8, aux_hidden=8, ffn_hidden=8,
                               subseq_len=100, aux_truncate=50, truncate=60, chunk=chunk))
    steps = []
    model.core.rnn.register_forward_hook(lambda m, inp, out: steps.append(inp[0]))
    x = torch.randint(0, 256, (3, T))
    model(x, torch.full((3,), T), torch.zeros(3, dtype=torch.long), generator=torch.Generator().manual_seed(0))
    widths = []
    for inp in steps:
        widths.append(int(inp.batch_sizes.shape[0]) if hasattr(inp, "batch_sizes") else inp.shape[1])
    # one read up to the last boundary, a catch-up of < chunk steps, and the two windows
    assert sum(widths) <= T + chunk + 60 + 50
    full = AuxRNN(ModelConfig(aux="reconstruct", hidden=8, embed_dim=8, aux_hidden=8, ffn_hidden=8,
                              subseq_len=100, aux_truncate=50, truncate="full", chunk=chunk))
    steps.clear()
    full.core.rnn.register_forward_hook(lambda m, inp, out: steps.append(inp[0]))
    full(x, torch.full((3,), T), torch.zeros(3, dtype=torch.long), generator=torch.Generator().manual_seed(0))
    widths = [int(i.batch_sizes.shape[0]) if hasattr(i, "batch_sizes") else i.shape[1] for i in steps]
    assert sum(widths) <= T + chunk + 50


def test_predict_equals_a_single_uninterrupted_call():
    """Chunked reading gives the same final state as one nn.LSTM call over the whole sequence."""
    model = AuxRNN(ModelConfig(aux="none", hidden=8, embed_dim=8, ffn_hidden=8, chunk=7)).double()
    x = torch.randint(0, 256, (3, 50))
    lengths = torch.tensor([50, 31, 7])
    expected = []
    for b in range(3):
        out, _ = model.core.rnn(model.encoder(x[b:b + 1, :int(lengths[b])].unsqueeze(-1)))
        expected.append(model.classifier(out[:, -1]))
    torch.testing.assert_close(model.predict(x, lengths), torch.cat(expected))


def test_coinciding_anchors_are_allowed_and_each_scores_its_subsequence():
    """Decision M18: the anchors of an example are independent draws; a repeat counts twice."""
    torch.manual_seed(0)
    model = AuxRNN(ModelConfig(channels=(8,), n_classes=2, embed_dim=4, hidden=5, aux_hidden=6, aux_layers=1,
                               ffn_hidden=6, subseq_len=4, aux_truncate=4, truncate=3, n_anchors=3))
    x, lengths = torch.randint(0, 8, (2, 12)), torch.tensor([12, 12])
    same = model(x, lengths, phase="pretrain", anchors={"reconstruct": torch.tensor([[6, 6, 9], [12, 5, 12]])})
    assert same.aux_tokens == 2 * 3 * (4 - 1)
    once = model(x, lengths, phase="pretrain", anchors={"reconstruct": torch.tensor([[6, 9, 9], [12, 5, 5]])})
    assert not torch.allclose(same.aux_loss, once.aux_loss)  # weights follow the draws
    g = torch.Generator().manual_seed(0)
    draws = Reconstruct(2, 4).sample(torch.full((4000,), 12), g)
    assert bool((draws[:, 0] == draws[:, 1]).any())  # with replacement: repeats happen
