"""auxrnn: learning long-term dependencies in RNNs with auxiliary losses (Trinh et al., ICML 2018)."""
__version__ = "0.1.0"
