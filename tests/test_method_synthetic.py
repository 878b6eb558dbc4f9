"""The method at tiny scale: a task that only an auxiliary gradient can teach, learned in a few hundred CPU steps.

Task (T = 36, 4 classes): blanks everywhere except a block x[4:12] that repeats the class symbol 1..4.
The classifier reads the state after the last step; the supervised gradient is truncated to the last
step (K = 1), x[35], a blank 23 steps after the block.

Why the claim holds by construction:
- r-LSTM with L = 28 and aux_truncate = 28: anchors are drawn from [L, T] = [28, 36], so every
  reconstructed window x[a-28 : a] starts at or before 8 and has key symbols among its targets, the anchor
  a = T included. Solving the auxiliary task therefore means that S_T encodes the class, and the
  auxiliary gradient window [a-28, a) reaches back into the block, so this can be learned.
- The plain LSTM with the same K = 1: its only gradient covers x[35]. What the state at step 35 still
  holds about the block is the remnant that a freshly initialised LSTM keeps through 23 blank steps
  (forget gate about sigmoid(1): 0.73^23, under 0.1%). Truncated BPTT can only grow that remnant
  indirectly, through the weights the window shares with the earlier steps; measured over seeds 0-9 at
  these settings it never did within 500 steps, while the r-LSTM learned the task at 8 of the 10 seeds
  (6 of them above 70% test accuracy). Two fixed seeds keep this test deterministic on one machine type.
"""
import pytest
import torch

from auxrnn.models import AuxRNN, ModelConfig

T, BLOCK, K, CLASSES = 36, (4, 12), 1, 4


def _batch(n: int, g: torch.Generator):
    y = torch.randint(0, CLASSES, (n,), generator=g)
    x = torch.zeros(n, T, dtype=torch.long)
    x[:, BLOCK[0]:BLOCK[1]] = (y + 1).unsqueeze(1)
    return x, torch.full((n,), T), y


def _train(aux: str, seed: int, steps: int = 500) -> list[float]:
    """Test accuracy every 100 steps of plain PyTorch training (Adam 1e-2, batch 32, clip 1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: the same float sums on every machine
    try:
        torch.manual_seed(seed)
        model = AuxRNN(ModelConfig(channels=(CLASSES + 1,), n_classes=CLASSES, embed_dim=16, hidden=32, aux=aux,
                                   n_anchors=2, subseq_len=28, aux_truncate=28, truncate=K, aux_hidden=32,
                                   aux_layers=1, ffn_hidden=32))
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        data, anchors = torch.Generator().manual_seed(seed + 1), torch.Generator().manual_seed(seed + 2)
        x_test, len_test, y_test = _batch(1000, torch.Generator().manual_seed(999))
        curve = []
        for step in range(1, steps + 1):
            x, lengths, y = _batch(32, data)
            loss = model(x, lengths, y, generator=anchors).loss
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            if step % 100 == 0:
                curve.append(float((model.predict(x_test, len_test).argmax(-1) == y_test).float().mean()))
        return curve
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_rlstm_learns_a_dependency_beyond_the_supervised_truncation_that_plain_lstm_cannot():
    seeds = (1, 2)
    rlstm = [_train("reconstruct", s) for s in seeds]
    plain = [_train("none", s) for s in seeds]
    finals = [curve[-1] for curve in rlstm]
    assert max(finals) >= 0.9 and sum(finals) / len(finals) >= 0.6, f"r-LSTM test accuracy every 100 steps: {rlstm}"
    assert max(max(curve) for curve in plain) <= 0.3, f"plain truncated LSTM, every 100 steps: {plain}"
