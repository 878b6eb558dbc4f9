"""The main recurrent core, run the constant-memory way.

One no-grad pass reads the sequence in chunks and keeps only the states where gradient windows start
(`scan`); each window is then recomputed with autograd from its detached start (`run_window`). Memory
of a truncated step therefore depends on the window widths, not on T.

`Core` wraps the user's recurrent module so that the engine sees one layout: inputs and outputs
(B, t, ...) and a state that is a tuple of tensors with the batch first, (B, ...) each.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from auxrnn.core.windows import Windows

State = tuple[torch.Tensor, ...]  # batch first: nn.LSTM (h, c) each (B, layers, H); nn.GRU / nn.RNN (h,)
CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


@torch.no_grad()
def init_forget_bias(rnn: nn.Module, value: float) -> None:
    """Start every LSTM layer's forget gate at bias `value` (b_ih = value, b_hh = 0 on the forget slice).

    Decision M17: 1.0, the constant TensorFlow's LSTM cells add to the forget gate, so that at
    initialisation a cell keeps about 73% of its memory per step instead of 50%. Gradients then reach
    further back from the start. GRUs have no forget gate: left as built.
    """
    if not isinstance(rnn, nn.LSTM):
        return
    H = rnn.hidden_size
    for layer in range(rnn.num_layers):
        getattr(rnn, f"bias_ih_l{layer}")[H:2 * H].fill_(value)  # gate order i, f, g, o
        getattr(rnn, f"bias_hh_l{layer}")[H:2 * H].zero_()


class Core(nn.Module):
    """The user's recurrent module behind one interface: batch-first inputs, batch-first tuple states.

    `rnn` is either
      * an `nn.LSTM`, `nn.GRU` or `nn.RNN` (any `num_layers`, `batch_first` either way, not bidirectional:
        a state that depends on the future cannot be truncated), or
      * any module with the contract ``rnn(inputs, state) -> (outputs, state)``: inputs (B, t, D),
        outputs (B, t, H), state a tensor or a tuple of tensors. It declares its layout with attributes:
        ``batch_first`` (default True; False means inputs and outputs are (t, B, ...)),
        ``state_batch_dim`` (default 0: the dimension of every state tensor that indexes the batch),
        ``hidden_size`` (H, required) and ``initial_state(batch_size)`` (required: the state before the
        first element, on the module's device). ``readout(state)`` (optional) gives the (B, H) output of
        the last step from a batch-first state; without it, the first state tensor's last slice is read.

    The wrapped module is `self.rnn`, so the state_dict keys of the paper's model stay `core.rnn.*`.
    """

    def __init__(self, rnn: nn.Module):
        super().__init__()
        self.rnn = rnn
        self.torch_rnn = isinstance(rnn, nn.RNNBase)
        if self.torch_rnn:
            if rnn.bidirectional:
                raise ValueError("a bidirectional core reads the future: it cannot be truncated; use one direction")
            self.batch_first, self.state_batch_dim = rnn.batch_first, 1
            self.hidden = rnn.proj_size or rnn.hidden_size if isinstance(rnn, nn.LSTM) else rnn.hidden_size
        else:
            missing = [a for a in ("hidden_size", "initial_state") if not hasattr(rnn, a)]
            if missing:
                raise TypeError(f"a custom core needs {missing}: see auxrnn.core.recurrent.Core for the contract")
            self.batch_first = bool(getattr(rnn, "batch_first", True))
            self.state_batch_dim = int(getattr(rnn, "state_batch_dim", 0))
            self.hidden = int(rnn.hidden_size)
        probe = self._from_module(self._checked_initial(1))
        self.tensor_state = not self.torch_rnn and isinstance(self._module_initial(1), torch.Tensor)
        self.state_size = sum(s[0].numel() for s in probe)

    def _module_initial(self, batch: int):
        if not self.torch_rnn:
            return self.rnn.initial_state(batch)
        r, w = self.rnn, next(self.rnn.parameters())
        h = w.new_zeros(r.num_layers, batch, r.proj_size or r.hidden_size if isinstance(r, nn.LSTM) else r.hidden_size)
        return (h, w.new_zeros(r.num_layers, batch, r.hidden_size)) if isinstance(r, nn.LSTM) else h

    def _from_module(self, state) -> State:
        state = (state,) if isinstance(state, torch.Tensor) else tuple(state)
        return tuple(s.movedim(self.state_batch_dim, 0) for s in state)

    def _checked_initial(self, batch: int):
        """The module's initial state for `batch` rows, refused unless every tensor has the batch at state_batch_dim."""
        state = self._module_initial(batch)
        d = self.state_batch_dim
        for i, s in enumerate((state,) if isinstance(state, torch.Tensor) else tuple(state)):
            if not isinstance(s, torch.Tensor) or not -s.dim() <= d < s.dim() or s.shape[d] != batch:
                got = f"shape {tuple(s.shape)}" if isinstance(s, torch.Tensor) else type(s).__name__
                raise ValueError(f"core.initial_state({batch}) gave state tensor {i} of {got}: its dimension "
                                 f"state_batch_dim={d} must be the batch size {batch}; fix initial_state or "
                                 "declare the core's state_batch_dim")
        return state

    def _to_module(self, state: State):
        out = tuple(s.movedim(0, self.state_batch_dim).contiguous() for s in state)
        if self.torch_rnn:
            return out if isinstance(self.rnn, nn.LSTM) else out[0]
        return out[0] if self.tensor_state else out

    def initial_state(self, batch: int) -> State:
        """The state before the first element, batch first; a custom core's is checked against `batch`."""
        return self._from_module(self._module_initial(batch) if self.torch_rnn else self._checked_initial(batch))

    def readout(self, state: State) -> torch.Tensor:
        """(B, H): the output of the step that produced `state` (the top layer's h for nn.LSTM/GRU/RNN)."""
        if not self.torch_rnn and hasattr(self.rnn, "readout"):
            return self.rnn.readout(state)
        h = state[0]
        return h if h.dim() == 2 else h.reshape(h.shape[0], -1, h.shape[-1])[:, -1]

    def flatten(self, state: State) -> torch.Tensor:
        """(B, state_size): every tensor of the state, every layer, side by side (decision M5)."""
        return torch.cat([s.reshape(s.shape[0], -1) for s in state], dim=-1)

    def _call(self, x: torch.Tensor, state: State):
        x = x if self.batch_first else x.transpose(0, 1)
        out, new = self.rnn(x, self._to_module(state))
        return (out if self.batch_first else out.transpose(0, 1)), self._from_module(new)

    def forward(self, x: torch.Tensor, state: State, lengths: torch.Tensor | None = None):
        """x: (B, W, E); state: per-row start; lengths: (B,) CPU int64 in [1, W] or None (all W).

        Returns outputs (B, W, H), zero past each row's length, and the state after each row's last step.
        """
        W = x.shape[1]
        if lengths is None or bool((lengths == W).all()):
            return self._call(x, state)
        if self.torch_rnn:
            hx = self._to_module(state)
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, hn = self.rnn(packed, hx)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=W)
            return out, self._from_module(hn)
        return self._by_length(x, state, lengths.cpu())

    def _by_length(self, x: torch.Tensor, state: State, lengths: torch.Tensor):
        """A custom module knows no lengths: run the rows still going, one call per distinct length."""
        dev = x.device
        out, final, t = None, [None] * len(state), 0
        active = torch.arange(x.shape[0])
        for stop in lengths.unique().tolist():  # ascending; `state` holds the active rows only
            idx = active.to(dev)
            piece, new = self._call(x[idx, t:stop], state)
            if out is None:
                out = piece.new_zeros(x.shape[0], x.shape[1], piece.shape[-1])
            steps = torch.arange(t, stop, device=dev)
            out = out.index_put((idx.unsqueeze(1), steps.unsqueeze(0)), piece)
            done = lengths[active] == stop
            for i, s in enumerate(new):
                base = final[i] if final[i] is not None else s.new_zeros(x.shape[0], *s.shape[1:])
                final[i] = base.index_copy(0, idx[done.to(dev)], s[done.to(dev)])
            state = tuple(s[~done.to(dev)] for s in new)
            active, t = active[~done], stop
        return out, tuple(final)


class Recurrent(Core):
    """The paper's core: a 1-layer fused LSTM or GRU (cuDNN on GPU), forget bias per decision M17."""

    def __init__(self, cell: str, input_size: int, hidden: int, forget_bias: float = 1.0):
        if cell not in CELLS:
            raise ValueError(f"unknown cell {cell!r}; choose one of {tuple(CELLS)}")
        rnn = CELLS[cell](input_size, hidden, batch_first=True)
        init_forget_bias(rnn, forget_bias)
        super().__init__(rnn)
        self.cell = cell


def detach_state(state):
    """Cut the graph behind a state (a tensor or a tuple of tensors): truncated BPTT starts here."""
    if isinstance(state, torch.Tensor):
        return state.detach()
    return tuple(detach_state(s) for s in state)


def _gather(x: torch.Tensor, rows: torch.Tensor, start: torch.Tensor, width: int) -> torch.Tensor:
    """x[rows[r], start[r] + j] for j < width, indices clamped inside x. x: (B, T, C) -> (R, width, C)."""
    idx = torch.clamp(start.unsqueeze(1) + torch.arange(width).unsqueeze(0), max=x.shape[1] - 1)
    return x[rows.to(x.device).unsqueeze(1), idx.to(x.device)]


def scan(
    core: Core,
    encode: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    rows: torch.Tensor,
    positions: torch.Tensor,
    chunk: int,
    keep: torch.Tensor | None = None,
) -> State:
    """States ``S_p`` (after consuming ``x[row, :p]``) at R requested (row, position) pairs.

    Reads x in chunks of `chunk` steps up to the last chunk boundary needed, recording the state at the
    boundary below each request, then catches each request up with one batched call of < chunk steps.
    Outside autograd unless `keep` marks requests that must carry the graph (full BPTT), in which case
    the whole read runs with autograd and only those requests stay attached.

    Args:
        x: (B, T, ...) inputs of `encode`; rows, positions: (R,) CPU int64 with 0 <= position <= length of row.
        keep: (R,) CPU bool or None.
    Returns:
        the state, batch first (R, ...) per tensor, detached except where `keep`.
    """
    R = rows.numel()
    grad = keep is not None and bool(keep.any()) and torch.is_grad_enabled()
    boundary = torch.div(positions, chunk, rounding_mode="floor") * chunk
    groups = {int(b): (boundary == b).nonzero().squeeze(1) for b in boundary.unique().tolist()}
    last = max(groups) if groups else 0
    state = core.initial_state(x.shape[0])
    dtype = state[0].dtype  # states are kept in the module's dtype, also under autocast
    parts = []
    with torch.set_grad_enabled(grad):
        for t0 in range(0, last + 1, chunk):
            if t0 in groups:
                idx = groups[t0]
                parts.append((idx, tuple(s[rows[idx].to(s.device)].to(dtype) for s in state)))
            if t0 < last:
                _, state = core(encode(x[:, t0:t0 + chunk]), state)
        out = tuple(s.new_zeros(R, *s.shape[1:]).to(dtype) for s in state)
        for idx, st in parts:
            idx_dev = idx.to(out[0].device)
            out = tuple(o.index_copy(0, idx_dev, s) for o, s in zip(out, st))
        behind = positions - boundary  # (R,) steps still to read, each < chunk
        todo = (behind > 0).nonzero().squeeze(1)
        if todo.numel():
            steps = _gather(x, rows[todo], boundary[todo], int(behind[todo].max()))
            start = tuple(o[todo.to(o.device)] for o in out)
            _, caught = core(encode(steps), start, behind[todo])
            todo_dev = todo.to(out[0].device)
            out = tuple(o.index_copy(0, todo_dev, c.to(dtype)) for o, c in zip(out, caught))
    if not grad:
        return tuple(o.detach() for o in out)
    attached = keep.to(out[0].device)
    return tuple(torch.where(attached.reshape(-1, *[1] * (o.dim() - 1)), o, o.detach()) for o in out)


def run_window(
    core: Core,
    encode: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    windows: Windows,
    start: State,
) -> tuple[torch.Tensor | None, State]:
    """Recompute R windows with autograd from their detached start states.

    Returns outputs (R, W, H) with W = the widest window (None if every window is empty) and the state
    after each window's last step (the start state where a window is empty).
    """
    W = windows.max_width
    if W == 0:
        return None, start
    tokens = _gather(x, windows.rows, windows.start, W)
    out, end = core(encode(tokens), start, windows.width.clamp(min=1))
    empty = windows.width == 0
    if bool(empty.any()):
        e = empty.to(out.device)
        end = tuple(torch.where(e.reshape(-1, *[1] * (s.dim() - 1)), s, n) for s, n in zip(start, end))
    return out, end
