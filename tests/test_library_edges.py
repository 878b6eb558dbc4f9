"""AuxModel as a user calls it: wrong anchors, channels, lengths, short sequences, a bad custom core and NaN
inputs are refused with an error naming the argument, before anything is computed from them (issue 30, section 6).
"""
import pytest
import torch
from torch import nn

from auxrnn import AuxModel, Predict, PredictValues, Reconstruct, ReconstructValues

SMALL = dict(n_anchors=1, subseq_len=5, aux_truncate=4, hidden=6, ffn_hidden=6)


def _tokens_model(**kw):
    torch.manual_seed(0)
    return AuxModel(nn.Embedding(11, 4), nn.GRU(4, 5, batch_first=True), nn.Linear(5, 3),
                    [Reconstruct(**SMALL, channels=(11,), embed_dim=4), Predict(**SMALL, channels=(11,))], truncate=6,
                    **kw)


def _batch():
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 11, (2, 20), generator=g), torch.tensor([20, 12]), torch.tensor([0, 2])


@pytest.mark.parametrize("anchors, error, message", [
    ({"reconstrut": torch.tensor([[6], [6]])}, ValueError,
     r"anchors has unknown key\(s\) \['reconstrut'\]: this model's objectives are \['reconstruct', 'predict'\]"),
    ({"reconstruct": torch.tensor([[28], [6]])}, ValueError,
     r"anchors\['reconstruct'\]\[0, 0\] = 28 is outside \[0, 20\]: anchor a names the state after consuming x\[0:a\]"),
    ({"reconstruct": torch.tensor([[6], [14]])}, ValueError, r"\[1, 0\] = 14 is outside \[0, 12\].*length is 12"),
    ({"reconstruct": torch.tensor([[-3], [6]])}, ValueError, r"= -3 is outside \[0, 20\]"),
    ({"predict": torch.tensor([[0], [13]])}, ValueError, r"anchors\['predict'\]\[1, 0\] = 13 is outside \[0, 12\]"),
    ({"reconstruct": torch.tensor([[6.0], [6.0]])}, TypeError, r"must be a \(B, n\) integer tensor, got torch.float32"),
    ({"reconstruct": torch.tensor([6, 6])}, ValueError, r"must have shape \(B=2, n >= 1\), got \(2,\)"),
])
def test_fixed_anchors_with_an_unknown_key_or_outside_their_range_are_refused(anchors, error, message):
    x, lengths, y = _batch()
    with pytest.raises(error, match=message):
        _tokens_model()(x, lengths, y, anchors=anchors)


def test_anchors_anywhere_in_their_row_are_accepted_and_echoed():
    """0 and the row's length are the ends: a fixed anchor outside the sampled range scores what fits."""
    x, lengths, y = _batch()
    a = {"reconstruct": torch.tensor([[0], [12]]), "predict": torch.tensor([[20], [11]])}
    out = _tokens_model()(x, lengths, y, anchors=a)
    assert out.anchors["predict"].tolist() == [[20], [11]] and torch.isfinite(out.loss)


@pytest.mark.parametrize("lengths, y, error, message", [
    (None, torch.tensor([0, 2]), TypeError, r"lengths is required: a \(B,\) integer tensor"),
    ([20, 12], torch.tensor([0, 2]), TypeError, r"lengths must be a \(B,\) integer torch.Tensor, got list"),
    (torch.tensor([20.0, 11.7]), torch.tensor([0, 2]), TypeError, r"lengths must be integers \(torch.long\), got dtype torch.float32"),
    (torch.tensor([0, 2]), None, ValueError, r"phase 'train' needs targets y: call model\(x, lengths, y\)"),  # model(x, y)
])
def test_lengths_are_type_checked_and_a_forgotten_lengths_is_named(lengths, y, error, message):
    x, _, _ = _batch()
    with pytest.raises(error, match=message):
        _tokens_model()(x, lengths, y)


def test_predict_lengths_are_optional_and_mean_all_T():
    x, _, _ = _batch()
    model = _tokens_model()
    torch.testing.assert_close(model.predict(x), model.predict(x, torch.tensor([20, 20])))
    with pytest.raises(TypeError, match=r"lengths must be integers"):
        model.predict(x, torch.tensor([20.0, 12.0]))


def test_value_objective_channels_must_be_an_int_and_match_the_data_at_the_first_call():
    with pytest.raises(TypeError, match=r"ReconstructValues: channels=\(256,\) is invalid: give C.*as an int"):
        AuxModel(nn.Linear(3, 4), objectives=[ReconstructValues()])
    with pytest.raises(TypeError, match=r"Predict: channels=3 is invalid: give a tuple with the vocabulary size"):
        AuxModel(objectives=[Predict(channels=3)])
    torch.manual_seed(0)
    model = AuxModel(nn.Linear(3, 4), nn.GRU(4, 5, batch_first=True), nn.Linear(5, 3),
                     [ReconstructValues(**SMALL, channels=2, embed_dim=4)])
    x, lengths, y = torch.randn(2, 20, 3), torch.tensor([20, 12]), torch.tensor([0, 1])
    with pytest.raises(ValueError, match=r"ReconstructValues: channels=2 expects x of shape \(B, T, 2\), got \(2, 20, 3\)"):
        model(x, lengths, y)


def test_token_objectives_refuse_real_values_and_tokens_outside_their_vocabulary():
    x, lengths, y = _batch()
    with pytest.raises(ValueError, match=r"Reconstruct: channel 0 of x holds tokens in \[0, 11\], outside its vocabulary"):
        _tokens_model()(torch.where(x == 3, 11, x), lengths, y)
    model = AuxModel(nn.Linear(1, 4), nn.GRU(4, 5, batch_first=True), nn.Linear(5, 3),
                     [Reconstruct(**SMALL, channels=(11,), embed_dim=4)])
    with pytest.raises(TypeError, match=r"Reconstruct scores integer tokens, got x of dtype torch.float32"):
        model(x.float(), lengths, y)


def test_paper_size_objectives_on_short_sequences_are_refused():
    x = torch.randint(0, 256, (2, 30))
    with pytest.raises(ValueError, match=r"Reconstruct: subseq_len=600 is longer than the sequences \(T=30\).*<= 30"):
        AuxModel()(x, torch.tensor([30, 30]), torch.tensor([0, 1]))
    model = AuxModel(objectives=[Predict(subseq_len=30)])
    with pytest.raises(ValueError, match=r"Predict: subseq_len=30 is longer than the sequences \(T=30\).*<= 29"):
        model(x, torch.tensor([30, 30]), torch.tensor([0, 1]))
    assert AuxModel(objectives=[Predict(subseq_len=29)])(x, torch.tensor([30, 30]), torch.tensor([0, 1])).aux_tokens


class BatchlessCell(nn.Module):
    """A custom core whose initial_state forgets the batch: (1, H) whatever B is."""

    hidden_size = 5

    def __init__(self):
        super().__init__()
        self.step = nn.Linear(4, 5)

    def initial_state(self, batch):
        return self.step.weight.new_zeros(1, self.hidden_size)

    def forward(self, x, state):
        return torch.tanh(self.step(x)), state


def test_a_custom_core_whose_initial_state_disagrees_with_its_batch_dimension_is_named():
    model = AuxModel(nn.Embedding(11, 4), BatchlessCell(), nn.Linear(5, 3), [])
    x, lengths, y = _batch()
    with pytest.raises(ValueError, match=r"core.initial_state\(2\) gave state tensor 0 of shape \(1, 5\): its dimension "
                                         r"state_batch_dim=0 must be the batch size 2"):
        model(x, lengths, y)
    cell = BatchlessCell()
    cell.state_batch_dim = 2
    with pytest.raises(ValueError, match=r"core.initial_state\(1\) gave state tensor 0 of shape \(1, 5\)"):
        AuxModel(nn.Embedding(11, 4), cell, nn.Linear(5, 3), [])


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_inputs_are_refused_at_the_first_call(bad):
    torch.manual_seed(0)
    model = AuxModel(nn.Linear(2, 4), nn.GRU(4, 5, batch_first=True), nn.Linear(5, 3),
                     [PredictValues(**SMALL, channels=2)])
    x = torch.randn(2, 20, 2)
    x[1, 3, 0] = bad
    with pytest.raises(ValueError, match=r"x holds NaN or inf \(first at index \(1, 3, 0\)\)"):
        model(x, torch.tensor([20, 12]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"x holds NaN or inf"):
        model.predict(x)
    assert not model.checked
    model(x.nan_to_num(0.0, 0.0, 0.0), torch.tensor([20, 12]), torch.tensor([0, 1]))
    assert model.checked  # later calls skip the scan of the data


def test_the_chunk_used_on_cpu_is_capped_as_documented():
    model = _tokens_model(chunk=256)
    x = torch.zeros(4, 21, dtype=torch.long)
    assert model.read_chunk(x, 8) == 16  # max(16, isqrt(2 * 4 * 21 // 8)) = 16 < 256
    assert model.read_chunk(torch.zeros(64, 4000, dtype=torch.long), 2) == 256


def test_a_pinned_chunk_reaches_the_one_chunk_read(monkeypatch):
    """With read_chunk pinned to the model's chunk (as the gradient tests do), chunk=256 on T=21 reads no chunk
    ahead: every requested state comes from one catch-up call of the core from the initial state."""
    monkeypatch.setattr(AuxModel, "read_chunk", lambda self, x, n: self.chunk)
    model = _tokens_model(chunk=256)
    calls = []
    model.core.rnn.register_forward_hook(lambda m, inp, out: calls.append(inp[0]))
    x, lengths, y = _batch()
    with torch.no_grad():
        model.predict(x, lengths)
    assert len(calls) == 1  # the catch-up from step 0: no chunked read before it
