"""A slow, obviously-correct reference for the training step: one example, one step, one loss at a time.

Each loss runs the recurrent network step by step from its initial state and detaches the state exactly
where its own gradient must stop. Nothing is shared between losses, so overlapping windows cannot
interfere. PyTorch's LSTM / GRU / RNN cells are written out layer by layer from the module's weights; a
custom core (a module written inside a test) is called one step at a time.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from auxrnn.core.objectives import Predict, Reconstruct


def _layer_step(rnn: nn.RNNBase, layer: int, inp: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None):
    """One step of one layer of a PyTorch RNN, from its weights. inp: (1, E); h, c: (1, H)."""
    w = lambda name: getattr(rnn, f"{name}_l{layer}")  # noqa: E731
    gi = F.linear(inp, w("weight_ih"), w("bias_ih") if rnn.bias else None)
    gh = F.linear(h, w("weight_hh"), w("bias_hh") if rnn.bias else None)
    if isinstance(rnn, nn.LSTM):
        i, f, g, o = (gi + gh).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c
    if isinstance(rnn, nn.GRU):
        r_i, z_i, n_i = gi.chunk(3, dim=-1)
        r_h, z_h, n_h = gh.chunk(3, dim=-1)
        r, z = torch.sigmoid(r_i + r_h), torch.sigmoid(z_i + z_h)
        n = torch.tanh(n_i + r * n_h)
        return (1 - z) * n + z * h, None
    act = torch.tanh if rnn.nonlinearity == "tanh" else torch.relu
    return act(gi + gh), None


def core_step(core, inp: torch.Tensor, state):
    """One step of the core. inp: (1, E). state: for PyTorch RNNs a list of (h, c) per layer, each (1, H);
    for a custom module its own state for a batch of one. Returns (output (1, H), state)."""
    rnn = core.rnn
    if not isinstance(rnn, nn.RNNBase):
        x = inp.unsqueeze(1) if core.batch_first else inp.unsqueeze(0)
        out, state = rnn(x, state)
        return out.reshape(1, -1), state
    new = []
    for layer, (h, c) in enumerate(state):
        h, c = _layer_step(rnn, layer, inp, h, c)
        new.append((h, c))
        inp = h
    return inp, new


def initial(core):
    if not isinstance(core.rnn, nn.RNNBase):
        return core.rnn.initial_state(1)
    rnn, w = core.rnn, core.rnn.weight_hh_l0
    lstm = isinstance(rnn, nn.LSTM)
    return [(w.new_zeros(1, rnn.hidden_size), w.new_zeros(1, rnn.hidden_size) if lstm else None)
            for _ in range(rnn.num_layers)]


def detach(state):
    if isinstance(state, torch.Tensor):
        return state.detach()
    if state is None:
        return None
    return type(state)(detach(s) for s in state)


def flat(core, state) -> torch.Tensor:
    """(1, state_size): every tensor of the state, layer by layer (decision M5)."""
    if not isinstance(core.rnn, nn.RNNBase):
        return core.flatten(core._from_module(state))
    hs = [h for h, _ in state]
    cs = [c for _, c in state if c is not None]
    return torch.cat(hs + cs, dim=-1)


def _run(model, x: torch.Tensor, upto: int, detach_at, collect_from: int | None = None):
    """Consume x[:upto] (x: (T, ...)) from the initial state; detach before step `detach_at` (an int, or a set
    of steps). Returns state, last output, outputs from `collect_from` on."""
    core = model.core
    state, last, outs = initial(core), None, []
    cuts = detach_at if isinstance(detach_at, set) else {detach_at}
    for t in range(upto):
        if t in cuts:
            state = detach(state)
        last, state = core_step(core, model.encoder(x[t:t + 1].unsqueeze(0))[0], state)
        if collect_from is not None and t >= collect_from:
            outs.append(last)
    if detach_at is not None and not isinstance(detach_at, set) and detach_at >= upto:
        state, last = detach(state), detach(last)
    return state, last, outs


def reference_loss(model, x, lengths, y, anchors, phase="train", aux_weight=1.0):
    """The loss whose gradient the fast step must reproduce. x: (B, T, ...); anchors as given to the model."""
    K = model.truncate
    B = x.shape[0]
    w = next(model.core.parameters())
    loss = torch.zeros((), dtype=w.dtype, device=w.device)
    if phase == "train":
        preds = []
        for b in range(B):
            n = int(lengths[b])
            detach_at = None if K is None else max(n - K, 0) if K > 0 else n
            state, last, _ = _run(model, x[b], n, detach_at)
            preds.append(model.classifier(last))  # the output at the last real element
        pred = torch.cat(preds)
        loss = loss + (F.cross_entropy(pred, y.long()) if model.loss_fn is None else model.loss_fn(pred, y))
    aux = None
    for key, obj in zip(model.keys, model.objectives):
        total, count = loss.new_zeros(()), 0
        L = obj.subseq_len
        for b in range(B):
            n = int(lengths[b])
            for a in anchors[key][b].tolist():
                if isinstance(obj, Reconstruct):
                    span = min(L, a)
                    if span < 2:
                        continue
                    state, _, _ = _run(model, x[b], a, max(a - obj.aux_truncate, 0))
                    s, c = obj.decode(flat(model.core, state), x[b, a - span:a].unsqueeze(0),
                                      torch.ones(1, span - 1, dtype=torch.bool))
                elif isinstance(obj, Predict):
                    span = min(L, n - a - 1)
                    if span < 1:
                        continue
                    # Truncated BPTT in segments of obj.aux_truncate steps: main and aux RNN detach at a, a+K, ...
                    Ka = obj.aux_truncate
                    _, _, outs = _run(model, x[b], a + span, set(range(a, a + span, Ka)), collect_from=a)
                    hx, s, c = None, 0.0, 0
                    if obj.start == "main":  # the predictor starts from the main LSTM's detached state S_a
                        st, _, _ = _run(model, x[b], a, a)
                        hx = (torch.stack([h for h, _ in st]), torch.stack([c for _, c in st]))
                    for j, h in enumerate(outs):
                        if j % Ka == 0 and hx is not None:
                            hx = detach(hx)
                        out, hx = obj.rnn(h.unsqueeze(1), hx)  # one step of the aux RNN, (1, 1, hidden)
                        sj, cj = obj.score(obj.out(out), x[b, a + 1 + j].reshape(1, 1, -1),
                                           torch.ones(1, 1, dtype=torch.bool))
                        s, c = s + sj, c + cj
                else:
                    raise NotImplementedError(type(obj))
                total, count = total + s, count + c
        term = obj.weight * total / max(count, 1)
        aux = term if aux is None else aux + term
    if aux is not None:
        loss = aux if phase == "pretrain" else loss + aux_weight * aux
    return loss


def _grads(model, loss):
    model.zero_grad()
    loss.backward()
    return {n: (p.grad.clone() if p.grad is not None else torch.zeros_like(p)) for n, p in model.named_parameters()}


def assert_same_gradients(model, x, lengths, y, anchors, phase="train", aux_weight=1.0, rtol=1e-9):
    """The fast step's loss and every parameter's gradient equal the reference's (float64)."""
    fast = model(x, lengths, y, anchors=anchors, phase=phase, aux_weight=aux_weight)
    slow = reference_loss(model, x, lengths, y, fast.anchors, phase, aux_weight)
    torch.testing.assert_close(fast.loss, slow, rtol=rtol * 0.1, atol=1e-12)
    g_fast, g_slow = _grads(model, fast.loss), _grads(model, slow)
    for name in g_fast:
        torch.testing.assert_close(g_fast[name], g_slow[name], rtol=rtol, atol=1e-12, msg=lambda m: f"{name}: {m}")
    assert any(g.abs().sum() > 0 for g in g_fast.values())
