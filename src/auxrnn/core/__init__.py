"""The algorithm: anchors, truncation windows, the recurrent core and the auxiliary heads.

Tensors in, tensors out: no files, no logging, no configuration objects. Everything here imports only torch.
"""
