"""Auxiliary heads (paper §1.2, §1.3, Fig. 2) and the token loss they share.

Both heads are a 2-layer LSTM-256 followed by an FFN (256, 256) and one softmax per input channel
(paper §2; the per-channel softmax is decision M8, the same head for the p-LSTM decision M12).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from auxrnn.core.encoders import Encoder
from auxrnn.core.recurrent import init_forget_bias


def feed_forward(d_in: int, d_hidden: int, d_out: int, dropout: float = 0.0) -> nn.Sequential:
    """Two hidden layers with ReLU (the paper's "2-layer FFN (256, 256)"), then a linear output (decision M14)."""
    return nn.Sequential(
        nn.Linear(d_in, d_hidden), nn.ReLU(), nn.Dropout(dropout),  # decision M14: ReLU, dropout 0 by default
        nn.Linear(d_hidden, d_hidden), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(d_hidden, d_out),
    )


def token_nll(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, channels: tuple[int, ...]
) -> tuple[torch.Tensor, int]:
    """Summed cross entropy over real targets, one softmax per channel (decision M8).

    Args:
        logits: (R, L, sum(channels)); targets: (R, L, C) int; mask: (R, L) CPU bool.
    Returns:
        (sum of negative log-likelihoods, number of scored tokens counting each channel).
    """
    m = mask.to(logits.device)
    total = logits.new_zeros(())
    for c, piece in enumerate(torch.split(logits, list(channels), dim=-1)):
        nll = F.cross_entropy(piece.reshape(-1, piece.shape[-1]), targets[..., c].reshape(-1).long(), reduction="none")
        total = total + (nll * m.reshape(-1)).sum()
    return total, int(mask.sum()) * len(channels)


def _argmax_tokens(logits: torch.Tensor, channels: tuple[int, ...]) -> torch.Tensor:
    """(R, sum(channels)) -> (R, C) most likely token per channel."""
    return torch.stack([p.argmax(-1) for p in torch.split(logits, list(channels), dim=-1)], dim=-1)


class Reconstructor(nn.Module):
    """r-LSTM decoder: from the main state at the anchor, rebuild the L elements before it.

    The bottom layer starts from a learned projection of the flattened main state (h, c); the layers
    above start from zeros (decision M5). Fed the first element, it predicts the next one at each step
    (decision M3), teacher-forced by default (decision M7), over all L-1 steps without truncation (decision M6).
    """

    def __init__(self, channels, state_size, embed_dim=128, hidden=256, layers=2, ffn_hidden=256,
                 encoder="embedding", dropout=0.0, teacher_forcing=True, forget_bias=1.0):
        super().__init__()
        self.channels, self.hidden, self.layers = tuple(channels), hidden, layers
        self.teacher_forcing = teacher_forcing
        self.encoder = Encoder(self.channels, embed_dim, encoder)  # decision M10: the decoder's own table
        self.init = nn.Linear(state_size, 2 * hidden)  # decision M5
        self.rnn = nn.LSTM(embed_dim, hidden, layers, batch_first=True)
        init_forget_bias(self.rnn, forget_bias)
        self.out = feed_forward(hidden, ffn_hidden, sum(self.channels), dropout)

    def _start(self, state: torch.Tensor):
        h, c = self.init(state).chunk(2, dim=-1)  # (R, hidden) each; decision M5: tanh on h, upper layers zero
        rest = h.new_zeros(self.layers - 1, *h.shape)
        return torch.cat([torch.tanh(h).unsqueeze(0), rest]), torch.cat([c.unsqueeze(0), rest])

    def forward(self, state: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor):
        """state: (R, state_size); tokens: (R, L, C) the window; mask: (R, L-1) CPU bool over targets.

        Returns (summed NLL, token count) of predicting tokens[:, 1:].
        """
        hx = self._start(state)
        if self.teacher_forcing:  # decision M7
            out, _ = self.rnn(self.encoder(tokens[:, :-1]), hx)  # (R, L-1, hidden); decision M6: all L-1 steps
            logits = self.out(out)
        else:  # free-running: each step reads the decoder's own previous guess
            steps, inp = [], tokens[:, :1]
            for _ in range(tokens.shape[1] - 1):
                out, hx = self.rnn(self.encoder(inp), hx)
                step = self.out(out)  # (R, 1, V)
                steps.append(step)
                inp = _argmax_tokens(step[:, 0], self.channels).unsqueeze(1)
            logits = torch.cat(steps, dim=1)
        return token_nll(logits, tokens[:, 1:], mask, self.channels)


class Predictor(nn.Module):
    """p-LSTM head: an auxiliary LSTM stacked on the main outputs from the anchor on, predicting the next input.

    2-layer LSTM-256 from zeros + FFN (256, 256), as the r-LSTM decoder (decision M12).
    """

    def __init__(self, channels, input_size, hidden=256, layers=2, ffn_hidden=256, dropout=0.0, forget_bias=1.0):
        super().__init__()
        self.channels = tuple(channels)
        self.rnn = nn.LSTM(input_size, hidden, layers, batch_first=True)
        init_forget_bias(self.rnn, forget_bias)
        self.out = feed_forward(hidden, ffn_hidden, sum(self.channels), dropout)

    def forward(self, main_out: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, state=None):
        """main_out: (R, W, H) main outputs with grad; targets: (R, W, C); mask: (R, W) CPU bool.

        state: the head's (h, c), each (layers, R, hidden), where the previous segment ended; None = zeros.
        Returns (summed NLL, token count, state after the last of the W steps).
        """
        out, state = self.rnn(main_out, state)  # (R, W, hidden)
        nll, count = token_nll(self.out(out), targets, mask, self.channels)
        return nll, count, state
