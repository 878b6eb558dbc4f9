"""The main recurrent core, run the constant-memory way.

One no-grad pass reads the sequence in chunks and keeps only the states where gradient windows start
(`scan`); each window is then recomputed with autograd from its detached start (`run_window`). Memory
of a truncated step therefore depends on the window widths, not on T.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from auxrnn.core.windows import Windows

State = tuple[torch.Tensor, ...]  # LSTM: (h, c); GRU: (h,); each (B, H)
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


class Recurrent(nn.Module):
    """A 1-layer fused recurrent core (cuDNN on GPU). Pluggable: anything with `zero_state` and this forward."""

    def __init__(self, cell: str, input_size: int, hidden: int, forget_bias: float = 1.0):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"unknown cell {cell!r}; choose one of {tuple(CELLS)}")
        self.cell, self.hidden = cell, hidden
        self.rnn = CELLS[cell](input_size, hidden, batch_first=True)
        init_forget_bias(self.rnn, forget_bias)

    @property
    def state_size(self) -> int:
        """Width of the flattened state handed to the r-LSTM decoder."""
        return self.hidden * (2 if self.cell == "lstm" else 1)

    def zero_state(self, batch: int, like: torch.Tensor) -> State:
        z = like.new_zeros(batch, self.hidden)
        return (z, z.clone()) if self.cell == "lstm" else (z,)

    def forward(self, x: torch.Tensor, state: State, lengths: torch.Tensor | None = None):
        """x: (B, W, E); state: per-row start; lengths: (B,) CPU int64 in [1, W] or None (all W).

        Returns outputs (B, W, H), zero past each row's length, and the state after each row's last step.
        """
        hx = tuple(s.unsqueeze(0).contiguous() for s in state)
        hx = hx if self.cell == "lstm" else hx[0]
        W = x.shape[1]
        if lengths is None or bool((lengths == W).all()):
            out, hn = self.rnn(x, hx)
        else:
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, hn = self.rnn(packed, hx)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=W)
        hn = hn if self.cell == "lstm" else (hn,)
        return out, tuple(s.squeeze(0) for s in hn)


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
    core: Recurrent,
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
        x: (B, T, C) int tokens; rows, positions: (R,) CPU int64 with 0 <= position <= length of row.
        keep: (R,) CPU bool or None.
    Returns:
        tuple of (R, H) tensors, detached except where `keep`.
    """
    R = rows.numel()
    grad = keep is not None and bool(keep.any()) and torch.is_grad_enabled()
    boundary = torch.div(positions, chunk, rounding_mode="floor") * chunk
    groups = {int(b): (boundary == b).nonzero().squeeze(1) for b in boundary.unique().tolist()}
    last = max(groups) if groups else 0
    state = core.zero_state(x.shape[0], core.rnn.weight_hh_l0)
    dtype = core.rnn.weight_hh_l0.dtype  # states are kept in the parameters' dtype, also under autocast
    parts = []
    with torch.set_grad_enabled(grad):
        for t0 in range(0, last + 1, chunk):
            if t0 in groups:
                idx = groups[t0]
                parts.append((idx, tuple(s[rows[idx].to(s.device)].to(dtype) for s in state)))
            if t0 < last:
                _, state = core(encode(x[:, t0:t0 + chunk]), state)
        out = tuple(core.rnn.weight_hh_l0.new_zeros(R, core.hidden) for _ in state)
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
    attached = keep.to(out[0].device).unsqueeze(1)
    return tuple(torch.where(attached, o, o.detach()) for o in out)


def run_window(
    core: Recurrent,
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
        e = empty.to(out.device).unsqueeze(1)
        end = tuple(torch.where(e, s, n) for s, n in zip(start, end))
    return out, end
