"""The algorithm: anchors, truncation windows, the recurrent core and the auxiliary heads.

Tensors in, tensors out: no files, no logging, no configuration objects. Everything here imports only torch.

Reading map, in the order one training step uses the pieces:

    anchors.py      where each objective's auxiliary loss sits: random positions per example, redrawn every
                    step, drawn from the range the objective allows (anchor a names the state after x[0:a])
    windows.py      which steps of the main network each loss backpropagates through, as index arithmetic:
                    the supervised window [len-K, len), one window per anchor, p-LSTM segments
                    (truncation.py: the one parser of the supervised K, "full" or K >= 0)
    recurrent.py    the core run the constant-memory way: one chunked no-grad read keeping only the states
                    where windows start, then each window recomputed with autograd from its detached start
    objectives/     what each auxiliary loss computes from its window: reconstruct.py (r-LSTM: a decoder
                    rebuilds the L steps before the anchor), predict.py (p-LSTM: the L steps after it),
                    *_values.py (the same on real values); base.py is the contract a new objective follows
    heads.py, encoders.py, inputs.py   the FFN and token loss the heads share, token/real encoders, the
                    (B, T[, C]) + lengths input contract
    model.py        AuxModel: anchors -> windows -> one read -> supervised loss + weighted auxiliary losses

The best short statement of the maths is the float64 reference the tests hold this code to,
tests/reference.py: one example at a time, step by step, every loss detaching exactly where its gradient
must stop, with nothing shared between losses. tests/test_core_gradients.py checks gradient equality.
"""
