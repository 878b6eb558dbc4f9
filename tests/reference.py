"""A slow, obviously-correct reference for the training step: one example, one step, one loss at a time.

Each loss runs the recurrent cell step by step from the zero state and detaches the state exactly where
its own gradient must stop. Nothing is shared between losses, so overlapping windows cannot interfere.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from auxrnn.core.heads import token_nll


def cell_step(core, inp: torch.Tensor, state):
    """One step of the core's own parameters, written out. inp: (1, E); state: tuple of (1, H)."""
    rnn = core.rnn
    gi = F.linear(inp, rnn.weight_ih_l0, rnn.bias_ih_l0)
    gh = F.linear(state[0], rnn.weight_hh_l0, rnn.bias_hh_l0)
    if core.cell == "lstm":
        i, f, g, o = (gi + gh).chunk(4, dim=-1)
        c = torch.sigmoid(f) * state[1] + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c
    r_i, z_i, n_i = gi.chunk(3, dim=-1)
    r_h, z_h, n_h = gh.chunk(3, dim=-1)
    r, z = torch.sigmoid(r_i + r_h), torch.sigmoid(z_i + z_h)
    n = torch.tanh(n_i + r * n_h)
    return ((1 - z) * n + z * state[0],)


def _run(model, tokens: torch.Tensor, upto: int, detach_at, collect_from: int | None = None):
    """Consume tokens[:upto] (tokens: (T, C)) from zero; detach before step `detach_at` (an int, or a set of
    steps). Returns state, outputs."""
    core = model.core
    w = core.rnn.weight_hh_l0
    state = tuple(w.new_zeros(1, core.hidden) for _ in range(2 if core.cell == "lstm" else 1))
    outs = []
    cuts = detach_at if isinstance(detach_at, set) else {detach_at}
    for t in range(upto):
        if t in cuts:
            state = tuple(s.detach() for s in state)
        state = cell_step(core, model.encoder(tokens[t:t + 1]), state)
        if collect_from is not None and t >= collect_from:
            outs.append(state[0])
    if detach_at is not None and not isinstance(detach_at, set) and detach_at >= upto:
        state = tuple(s.detach() for s in state)
    return state, outs


def reference_loss(model, x, lengths, y, anchors, phase="train", aux_weight=1.0):
    """The loss whose gradient the fast step must reproduce. x: (B, T, C); anchors as given to the model."""
    cfg = model.cfg
    K = cfg.supervised_truncate
    B = x.shape[0]
    loss = x.new_zeros((), dtype=model.core.rnn.weight_hh_l0.dtype)
    if phase == "train":
        logits = []
        for b in range(B):
            n = int(lengths[b])
            detach_at = None if K is None else max(n - K, 0) if K > 0 else n
            state, _ = _run(model, x[b], n, detach_at)
            logits.append(model.classifier(state[0]))
        loss = loss + F.cross_entropy(torch.cat(logits), y.long())
    nll, count = loss.new_zeros(()), 0
    L = cfg.subseq_len
    if model.reconstructor is not None:
        for b in range(B):
            for a in anchors["reconstruct"][b].tolist():
                span = min(L, a)
                if span < 2:
                    continue
                state, _ = _run(model, x[b], a, max(a - cfg.aux_truncate, 0))
                window = x[b, a - span:a].unsqueeze(0)
                s, c = model.reconstructor(torch.cat(state, -1), window, torch.ones(1, span - 1, dtype=torch.bool))
                nll, count = nll + s, count + c
    if model.predictor is not None:
        for b in range(B):
            n = int(lengths[b])
            for a in anchors["predict"][b].tolist():
                span = min(L, n - a - 1)
                if span < 1:
                    continue
                # Truncated BPTT in segments of aux_truncate steps: main and aux RNN detach at a, a+K, a+2K, ...
                K = cfg.aux_truncate
                cuts = set(range(a, a + span, K))
                _, outs = _run(model, x[b], a + span, cuts, collect_from=a)
                head, hx = model.predictor, None
                for j, h in enumerate(outs):
                    if j % K == 0 and hx is not None:
                        hx = tuple(s.detach() for s in hx)
                    out, hx = head.rnn(h.unsqueeze(1), hx)  # one step of the aux RNN, (1, 1, hidden)
                    target = x[b, a + 1 + j].reshape(1, 1, -1)
                    s, c = token_nll(head.out(out), target, torch.ones(1, 1, dtype=torch.bool), head.channels)
                    nll, count = nll + s, count + c
    if count:
        aux = nll / count
        loss = aux if phase == "pretrain" else loss + aux_weight * aux
    return loss
