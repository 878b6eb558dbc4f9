"""The fast chunked step has exactly the gradients of the slow per-loss reference (float64)."""
import pytest
import torch

from auxrnn.core.recurrent import Recurrent
from auxrnn.models import AuxRNN, ModelConfig

from reference import assert_same_gradients


def _model(**kw):
    base = dict(channels=(16,), n_classes=3, embed_dim=6, hidden=5, aux_hidden=7, aux_layers=2, ffn_hidden=8,
                subseq_len=6, aux_truncate=5, truncate=7, chunk=4)
    base.update(kw)
    torch.manual_seed(0)
    return AuxRNN(ModelConfig(**base)).double()


def _batch(lengths, T, channels=(16,), seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.stack([torch.randint(0, v, (len(lengths), T), generator=g) for v in channels], dim=-1)
    return x, torch.tensor(lengths), torch.randint(0, 3, (len(lengths),), generator=g)


def _anchors(model, lengths, n, seed=3):
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, obj in zip(model.keys, model.objectives):
        obj.n_anchors = n
        out[key] = obj.sample(lengths, g)
    return out


@pytest.mark.parametrize("aux", ["reconstruct", "predict", "both"])
@pytest.mark.parametrize("truncate", ["full", 7, 0])
def test_gradients_match_reference_variable_lengths_several_anchors(aux, truncate):
    model = _model(aux=aux, truncate=truncate)
    x, lengths, y = _batch([23, 17, 9, 4, 23], T=23)
    assert_same_gradients(model, x, lengths, y, _anchors(model, lengths, n=3))


@pytest.mark.parametrize("aux", ["reconstruct", "predict"])
def test_gradients_match_with_windows_touching_start_and_end(aux):
    model = _model(aux=aux, subseq_len=5, aux_truncate=4, truncate=6)
    x, lengths, y = _batch([20, 20, 11], T=20)
    if aux == "reconstruct":  # at the first valid anchor, at the very end, and before the truncation reaches 0
        a = torch.tensor([[5, 20, 2], [20, 5, 3], [11, 11, 1]])
    else:  # from the first step, and the last anchor whose window fits
        a = torch.tensor([[0, 14, 13], [14, 0, 7], [0, 5, 9]])
    assert_same_gradients(model, x, lengths, y, {aux: a})


def test_gradients_match_when_T_is_a_multiple_of_truncate_and_chunk():
    model = _model(aux="reconstruct", truncate=6, aux_truncate=6, chunk=6, subseq_len=6)
    x, lengths, y = _batch([24, 18, 12], T=24)
    a = torch.tensor([[6, 12, 24], [18, 12, 6], [12, 6, 12]])
    assert_same_gradients(model, x, lengths, y, {"reconstruct": a})


def test_gradients_match_for_rgb_channels_gru_and_pretraining():
    model = _model(aux="both", cell="gru", channels=(5, 7, 3), truncate=5)
    x, lengths, y = _batch([15, 10], T=15, channels=(5, 7, 3))
    assert_same_gradients(model, x, lengths, y, _anchors(model, lengths, n=2), phase="pretrain")
    assert_same_gradients(model, x, lengths, y, _anchors(model, lengths, n=2, seed=9), aux_weight=0.3)


def test_gradients_match_with_free_running_decoder_and_scalar_inputs():
    model = _model(aux="reconstruct", teacher_forcing=False, encoder="scalar", truncate="full")
    x, lengths, y = _batch([14, 12], T=14)
    assert_same_gradients(model, x, lengths, y, _anchors(model, lengths, n=2))


@pytest.mark.parametrize("aux", ["reconstruct", "predict"])
def test_gradient_is_exactly_zero_beyond_each_boundary(aux):
    """Tokens that occur only outside every window get exactly zero embedding gradient."""
    model = _model(aux=aux, subseq_len=4, aux_truncate=3, truncate=3, chunk=5)
    T, OUTSIDE = 30, 15
    x = torch.full((1, T), OUTSIDE)
    a = torch.tensor([[14]]) if aux == "reconstruct" else torch.tensor([[8]])
    inside = list(range(27, 30))  # supervised window
    inside += list(range(11, 14)) + list(range(10, 14)) if aux == "reconstruct" else list(range(8, 13))
    for i, t in enumerate(sorted(set(inside))):
        x[0, t] = i % 10
    out = model(x, torch.tensor([T]), torch.tensor([1]), anchors={aux: a})
    model.zero_grad()
    out.loss.backward()
    assert model.encoder.table.weight.grad[OUTSIDE].abs().max() == 0
    assert model.encoder.table.weight.grad[:10].abs().sum() > 0
    if aux == "reconstruct":
        assert model.reconstructor.encoder.table.weight.grad[OUTSIDE].abs().max() == 0
    # and the outside token does get a gradient once the supervised loss reaches back over it
    full = _model(aux=aux, subseq_len=4, aux_truncate=3, truncate="full", chunk=5)
    out = full(x, torch.tensor([T]), torch.tensor([1]), anchors={aux: a})
    out.loss.backward()
    assert full.encoder.table.weight.grad[OUTSIDE].abs().max() > 0


@pytest.mark.parametrize("aux_truncate", [1, 2, 3, 6, 7])
def test_plstm_backpropagates_its_window_in_segments_of_aux_truncate(aux_truncate):
    """p-LSTM: the L = 6 steps after an anchor are cut into segments of aux_truncate steps (main and aux
    RNN detached at each segment start), including K = 1, K dividing L, K = L and K > L."""
    model = _model(aux="predict", subseq_len=6, aux_truncate=aux_truncate, truncate=4)
    x, lengths, y = _batch([22, 22, 13], T=22)
    assert_same_gradients(model, x, lengths, y, {"predict": torch.tensor([[0, 15], [7, 3], [6, 2]])})


@pytest.mark.parametrize("aux_truncate", [2, 6])
def test_plstm_predictor_may_start_from_the_main_state(aux_truncate):
    """aux_start=main: the predictor's first state is the main LSTM's detached state S_a (same layers x hidden)."""
    model = _model(aux="predict", subseq_len=6, aux_truncate=aux_truncate, truncate=4, hidden=7, aux_hidden=7,
                   aux_layers=1, aux_start="main")
    x, lengths, y = _batch([22, 22, 13], T=22)
    assert_same_gradients(model, x, lengths, y, {"predict": torch.tensor([[0, 15], [7, 3], [6, 2]])})
    zeros = _model(aux="predict", subseq_len=6, aux_truncate=aux_truncate, truncate=4, hidden=7, aux_hidden=7,
                   aux_layers=1)
    anchors = {"predict": torch.tensor([[0, 15], [7, 3], [6, 2]])}
    assert not torch.equal(model(x, lengths, y, anchors=anchors).loss, zeros(x, lengths, y, anchors=anchors).loss)
    with pytest.raises(ValueError, match="main LSTM"):
        _model(aux="predict", hidden=5, aux_hidden=7, aux_start="main")
    with pytest.raises(ValueError, match="model.aux_start"):
        ModelConfig(aux="predict", aux_start="ones").validate()


def test_every_lstm_starts_with_forget_bias_one_and_gru_is_left_as_built():
    """Decision M17: b_ih = 1, b_hh = 0 on the forget slice of every LSTM layer (main, decoder, predictor)."""
    model = _model(aux="both", aux_layers=2)
    for rnn in (model.core.rnn, model.reconstructor.rnn, model.predictor.rnn):
        H = rnn.hidden_size
        for layer in range(rnn.num_layers):
            assert torch.equal(getattr(rnn, f"bias_ih_l{layer}")[H:2 * H], torch.ones(H, dtype=torch.float64))
            assert torch.equal(getattr(rnn, f"bias_hh_l{layer}")[H:2 * H], torch.zeros(H, dtype=torch.float64))
            assert getattr(rnn, f"bias_ih_l{layer}")[:H].abs().sum() > 0  # the other gates keep PyTorch's init
    zero = _model(aux="reconstruct", forget_bias=0.0)
    assert torch.equal(zero.core.rnn.bias_ih_l0[5:10], torch.zeros(5, dtype=torch.float64))
    torch.manual_seed(0)
    gru = Recurrent("gru", 6, 5, forget_bias=1.0)
    torch.manual_seed(0)
    built = torch.nn.GRU(6, 5, batch_first=True)
    assert torch.equal(gru.rnn.bias_ih_l0, built.bias_ih_l0)
