"""The library with the user's own parts: cores, encoders, heads, losses and real-valued objectives.

Gradients equal the float64 step-by-step reference (tests/reference.py) on every core kind; the bytes
saved for backward do not grow with T for a user core; bad parts are refused with a clear error.
"""
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.graph import saved_tensors_hooks

from auxrnn import AuxModel, Predict, PredictValues, Reconstruct, ReconstructValues
from auxrnn.core.objectives import OBJECTIVES, Objective
from auxrnn.core.objectives.predict import predict_targets, predict_windows
from auxrnn.core.objectives.values import squared_error

from reference import assert_same_gradients

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
DEVICES = ["cpu", pytest.param("cuda", marks=[cuda, pytest.mark.cuda])]
AUX = dict(n_anchors=2, subseq_len=5, aux_truncate=4, hidden=6, layers=2, ffn_hidden=7)


class TwoTrackCell(nn.Module):
    """A custom core written here: time-major inputs, a state of two tensors whose batch is dimension 1."""

    batch_first = False
    state_batch_dim = 1

    def __init__(self, d_in: int, hidden: int):
        super().__init__()
        self.hidden_size = hidden
        self.inp = nn.Linear(d_in, 2 * hidden)
        self.rec = nn.Linear(hidden, 2 * hidden, bias=False)

    def initial_state(self, batch: int):
        z = self.rec.weight.new_zeros(1, batch, self.hidden_size)
        return z, z.clone()

    def forward(self, x, state):  # x: (t, B, D); state: (1, B, H) twice
        h, m = state[0][0], state[1][0]
        outs = []
        for step in x:
            a, b = (self.inp(step) + self.rec(h)).chunk(2, dim=-1)
            m = 0.5 * m + torch.tanh(a)
            h = torch.tanh(b + m)
            outs.append(h)
        return torch.stack(outs), (h.unsqueeze(0), m.unsqueeze(0))


def _tokens(lengths, T, vocab=11, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (len(lengths), T), generator=g), torch.tensor(lengths), \
        torch.randint(0, 3, (len(lengths),), generator=g)


def _values(lengths, T, C=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(lengths), T, C, generator=g, dtype=torch.float64)
    return x, torch.tensor(lengths), torch.randint(0, 3, (len(lengths),), generator=g)


def _anchors(model, lengths, seed=3):
    g = torch.Generator().manual_seed(seed)
    return {k: o.sample(lengths, g) for k, o in zip(model.keys, model.objectives)}


@pytest.fixture
def pinned_chunk(monkeypatch):
    """Read in chunks of exactly the model's `chunk`: on CPU it is otherwise capped near sqrt(2BT/R)
    (AuxModel.read_chunk), and chunk=256 on these short rows would never reach the one-chunk read it names."""
    monkeypatch.setattr(AuxModel, "read_chunk", lambda self, x, n_requests: self.chunk)


def _check(model, x, lengths, y, device, **kw):
    model = model.double().to(device)
    x, y = x.to(device), y.to(device)
    rtol = 1e-9 if device == "cpu" else 1e-7
    assert_same_gradients(model, x, lengths, y, _anchors(model, lengths), rtol=rtol, **kw)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("chunk", [1, 7, 256])
@pytest.mark.parametrize("batch_first", [True, False])
def test_two_layer_lstm_core_has_the_reference_gradients(chunk, batch_first, device, pinned_chunk):
    torch.manual_seed(0)
    model = AuxModel(nn.Embedding(11, 4), nn.LSTM(4, 5, num_layers=2, batch_first=batch_first), nn.Linear(5, 3),
                     [Reconstruct(**AUX, channels=(11,), embed_dim=4), Predict(**AUX, channels=(11,))],
                     truncate=6, chunk=chunk)
    x, lengths, y = _tokens([21, 15, 8, 3], T=21)
    _check(model, x, lengths, y, device, aux_weight=0.7)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("truncate", ["full", 5, 0])
def test_gru_core_has_the_reference_gradients(truncate, device):
    torch.manual_seed(0)
    model = AuxModel(nn.Embedding(11, 4), nn.GRU(4, 5, batch_first=True), nn.Linear(5, 3),
                     [Reconstruct(**AUX, channels=(11,), embed_dim=4)], truncate=truncate, chunk=7)
    x, lengths, y = _tokens([17, 12, 9], T=17)
    _check(model, x, lengths, y, device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("chunk", [1, 7, 256])
def test_custom_cell_core_has_the_reference_gradients(chunk, device, pinned_chunk):
    torch.manual_seed(0)
    model = AuxModel(nn.Embedding(11, 4), TwoTrackCell(4, 5), nn.Linear(5, 3),
                     [Reconstruct(**AUX, channels=(11,), embed_dim=4), Predict(**AUX, channels=(11,))],
                     truncate=6, chunk=chunk)
    x, lengths, y = _tokens([19, 14, 6], T=19)
    _check(model, x, lengths, y, device)
    _check(model, x, lengths, y, device, phase="pretrain")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("chunk", [1, 7, 256])
def test_real_valued_inputs_with_both_value_objectives_have_the_reference_gradients(chunk, device, pinned_chunk):
    torch.manual_seed(0)
    objectives = [ReconstructValues(**AUX, channels=3, embed_dim=4, weight=0.5), PredictValues(**AUX, channels=3)]
    model = AuxModel(nn.Linear(3, 4), nn.LSTM(4, 5, num_layers=2, batch_first=True), nn.Linear(5, 3), objectives,
                     truncate=7, chunk=chunk)
    x, lengths, y = _values([20, 13, 7], T=20)
    _check(model, x, lengths, y, device)


def test_free_running_value_decoder_has_the_reference_gradients():
    torch.manual_seed(0)
    model = AuxModel(nn.Linear(3, 4), nn.RNN(4, 5, batch_first=True), nn.Linear(5, 3),
                     [ReconstructValues(**AUX, channels=3, embed_dim=4, teacher_forcing=False)], truncate="full")
    x, lengths, y = _values([12, 9], T=12)
    _check(model, x, lengths, y, "cpu")


@pytest.mark.parametrize("device", DEVICES)
def test_sequence_regression_with_a_mean_squared_error_loss(device):
    """A real-valued target per sequence: the head gives one value, the main loss is the user's MSE."""
    torch.manual_seed(0)
    model = AuxModel(nn.Linear(3, 4), nn.GRU(4, 5, batch_first=True), nn.Linear(5, 1),
                     [PredictValues(**AUX, channels=3)], truncate=6, loss=F.mse_loss)
    x, lengths, _ = _values([16, 11, 5], T=16)
    y = x.sum(dim=(1, 2)).unsqueeze(1) / 10  # (B, 1)
    _check(model, x, lengths, y, device)
    out = model(x.to(device), lengths, y.to(device), generator=torch.Generator().manual_seed(0))
    assert out.logits.shape == (3, 1) and model.predict(x.to(device), lengths).shape == (3, 1)
    # and it learns: a few steps of Adam bring the MSE down
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    first = None
    for step in range(15):
        out = model(x.to(device), lengths, y.to(device), generator=torch.Generator().manual_seed(step))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        first = out.sup_loss.item() if first is None else first
    assert out.sup_loss.item() < 0.5 * first


def _saved_bytes(model, x, T):
    total = [0]

    def pack(t):
        total[0] += t.numel() * t.element_size()
        return t

    with saved_tensors_hooks(pack, lambda t: t):
        out = model(x[:, :T], torch.tensor([T, T]), torch.tensor([1, 2]), generator=torch.Generator().manual_seed(1))
    out.loss.backward()
    return total[0]


def _user_model(truncate):
    torch.manual_seed(0)
    return AuxModel(nn.Linear(2, 4), TwoTrackCell(4, 6), nn.Linear(6, 3),
                    [ReconstructValues(n_anchors=2, subseq_len=30, aux_truncate=20, channels=2, hidden=8, ffn_hidden=8,
                                       embed_dim=4),
                     PredictValues(n_anchors=1, subseq_len=30, aux_truncate=20, channels=2, hidden=8, ffn_hidden=8)],
                    truncate=truncate)


def test_bytes_saved_for_backward_are_identical_at_T_1000_and_8000_for_a_user_core():
    x = torch.randn(2, 8000, 2)
    model = _user_model(25)
    small = _saved_bytes(model, x, 1000)
    assert small == _saved_bytes(model, x, 8000)
    assert _saved_bytes(_user_model("full"), x, 1000) > 2 * small  # the O(T) it replaces, already at T = 1000


@cuda
@pytest.mark.cuda
def test_cuda_bytes_saved_for_backward_are_identical_at_T_1000_and_8000_for_a_user_core():
    x = torch.randn(2, 8000, 2, device="cuda")
    model = _user_model(25).cuda()
    assert _saved_bytes(model, x, 1000) == _saved_bytes(model, x, 8000)


def test_defaults_are_the_papers_rlstm():
    model = AuxModel()
    assert [type(o) for o in model.objectives] == [Reconstruct] and model.truncate == 300
    assert isinstance(model.core.rnn, nn.LSTM) and model.core.rnn.hidden_size == 128
    assert model.objectives[0].subseq_len == 600 and model.objectives[0].aux_truncate == 300
    assert model.core.rnn.bias_ih_l0[128:256].eq(1).all()  # decision M17
    x = torch.randint(0, 256, (2, 40), dtype=torch.uint8)
    assert model.predict(x, torch.tensor([40, 30])).shape == (2, 10)


def test_an_objective_listed_twice_gets_its_own_key_and_weights_add_up():
    torch.manual_seed(0)
    obj = dict(n_anchors=1, subseq_len=4, aux_truncate=3, hidden=5, ffn_hidden=5)
    model = AuxModel(nn.Embedding(11, 4), nn.GRU(4, 5, batch_first=True), nn.Linear(5, 3),
                     [Predict(**obj, channels=(11,), weight=2.0), Predict(**obj, channels=(11,), weight=0.0)])
    assert model.keys == ["predict", "predict_1"] and hasattr(model, "predictor_1")
    x, lengths, y = _tokens([12, 9], T=12)
    a = _anchors(model, lengths)
    out = model(x, lengths, phase="pretrain", anchors=a)
    total, count = model.objectives[0].loss(*_main(model, x, lengths, a["predict"]), a["predict"])
    torch.testing.assert_close(out.aux_loss, 2.0 * total / count)


def _main(model, x, lengths, anchors):
    from auxrnn.core.objectives import Main
    from auxrnn.core.recurrent import run_window, scan
    w = model.objectives[0].windows(anchors, lengths)
    start = scan(model.core, model.encoder, x, w.rows, w.start, 4)
    return Main(model.core, x, lambda win, s: run_window(model.core, model.encoder, x, win, s)), w, start


def test_every_registered_objective_is_one_class_with_its_name():
    assert set(OBJECTIVES) == {"reconstruct", "predict", "reconstruct_values", "predict_values"}
    for name, cls in OBJECTIVES.items():
        assert issubclass(cls, Objective) and cls.name == name and cls.attr


@pytest.mark.parametrize("build, message", [
    (lambda: AuxModel(core=nn.LSTM(128, 8, bidirectional=True)), r"bidirectional core reads the future"),
    (lambda: AuxModel(core=nn.Linear(3, 3)), r"a custom core needs \['hidden_size', 'initial_state'\]"),
    (lambda: AuxModel(truncate=-2), r"truncate=-2 is invalid: use 'full'"),
    (lambda: AuxModel(truncate="half"), r"truncate='half' is invalid"),
    (lambda: AuxModel(chunk=0), r"chunk=0 is invalid"),
    (lambda: AuxModel(objectives=["reconstruct"]), r"objectives must be Objective instances"),
    (lambda: Reconstruct(subseq_len=1), r"Reconstruct: subseq_len=1 is invalid: must be an integer >= 2"),
    (lambda: Predict(n_anchors=0), r"Predict: n_anchors=0 is invalid"),
    (lambda: Predict(aux_truncate=0), r"Predict: aux_truncate=0 is invalid"),
    (lambda: Predict(weight=-1.0), r"Predict: weight=-1.0 is invalid: must be a finite number >= 0"),
])
def test_bad_parts_are_refused_with_a_clear_error(build, message):
    with pytest.raises((ValueError, TypeError), match=message):
        build()


def test_an_objective_belongs_to_one_model():
    shared = Reconstruct()
    AuxModel(objectives=[shared])
    with pytest.raises(ValueError, match="already belongs to a model"):
        AuxModel(objectives=[shared])


def test_float_inputs_reach_a_user_encoder_and_the_token_encoder_refuses_them():
    x = torch.rand(2, 20, 1)
    with pytest.raises(ValueError, match=r"this encoder reads integer tokens.*your own encoder, e\.g\. nn\.Linear"):
        AuxModel()(x, torch.tensor([20, 20]), torch.tensor([0, 1]))
    model = AuxModel(encoder=nn.Linear(1, 128), objectives=[])
    assert model.predict(x, torch.tensor([20, 12])).shape == (2, 10)
    with pytest.raises(ValueError, match="phase 'pretrain' needs an auxiliary objective"):
        model(x, torch.tensor([20, 12]), phase="pretrain")


class NextValue(Objective):
    """A new objective written here, as a user would: a linear head on the main outputs predicts the next values."""

    name, attr = "next_value", "next_value"

    def build(self, core):
        self.out = nn.Linear(core.hidden, 3)

    def anchor_range(self, lengths):
        return torch.zeros_like(lengths), torch.clamp(lengths - self.subseq_len - 1, min=0)

    def windows(self, anchors, lengths):
        return predict_windows(anchors, lengths, self.subseq_len)

    def loss(self, main, windows, start, anchors):
        outputs, _ = main.run(windows, start)  # (R, W, H) with autograd from the detached start
        positions, mask = predict_targets(windows, outputs.shape[1])
        return squared_error(self.out(outputs), main.gather(windows.rows, positions), mask)


def test_a_new_objective_needs_no_change_to_the_engine():
    torch.manual_seed(0)
    model = AuxModel(nn.Linear(3, 4), nn.GRU(4, 5, batch_first=True), nn.Linear(5, 3),
                     [NextValue(n_anchors=2, subseq_len=4, aux_truncate=4), PredictValues(**AUX, channels=3)])
    x, lengths, y = _values([14, 9], T=14, C=3)
    out = model(x.float(), lengths, y, generator=torch.Generator().manual_seed(0))
    out.loss.backward()
    assert model.keys == ["next_value", "predict_values"] and out.aux_tokens > 0
    assert model.next_value.out.weight.grad.abs().sum() > 0 and model.core.rnn.weight_hh_l0.grad.abs().sum() > 0


def test_configured_model_reads_real_values_with_the_linear_encoder_and_value_objectives():
    """model.encoder=linear, model.aux=reconstruct_values+predict_values: the CLI's model on real values."""
    from auxrnn.models import AuxRNN, ModelConfig
    torch.manual_seed(0)
    cfg = ModelConfig(channels=(2, 2, 2), n_classes=3, encoder="linear", embed_dim=4, hidden=5, aux_hidden=6,
                      ffn_hidden=7, subseq_len=5, aux_truncate=4, truncate=6, n_anchors=2, chunk=7,
                      aux="reconstruct_values+predict_values")
    model = AuxRNN(cfg)
    assert [o.name for o in model.objectives] == ["reconstruct_values", "predict_values"]
    x, lengths, y = _values([15, 10, 6], T=15)
    _check(model, x, lengths, y, "cpu")
    with pytest.raises(ValueError, match="inputs have 2 values per step, the model expects 3"):
        model(x[..., :2], lengths, y)
