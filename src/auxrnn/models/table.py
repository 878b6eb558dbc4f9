"""The parameter table of docs/baselines.md: every model at the paper's defaults on every dataset's shape.

`python -m auxrnn.models` prints it; a test checks that the docs show what the code prints.
"""
from __future__ import annotations

from typing import Mapping

from auxrnn.data import static_info
from auxrnn.models.registry import build_model, model_config
from auxrnn.models.transformer import transformer_parameters

TABLE_DATASETS = {  # row name -> (dataset, options): its input channels and classes come from the data layer
    "MNIST, pMNIST": ("mnist", {}),
    "CIFAR10 (RGB)": ("cifar10", {}),
    "StanfordDogs (RGB)": ("stanforddogs", {}),
    "DBpedia (bytes)": ("dbpedia", {}),
}


def dataset_shapes() -> dict[str, dict]:
    """Row name -> the ModelConfig fields its dataset fixes (channels, n_classes), without reading a file."""
    infos = {row: static_info(name, options) for row, (name, options) in TABLE_DATASETS.items()}
    return {row: dict(channels=tuple(i.channels), n_classes=int(i.n_classes)) for row, i in infos.items()}


def parameter_table(shapes: Mapping[str, dict] | None = None) -> str:
    """Markdown table of the total (main + auxiliary) parameter counts of every model at the paper's defaults."""
    cols = [("LSTM", "rnn", dict(aux="none")), ("r-LSTM", "rnn", dict(aux="reconstruct")),
            ("p-LSTM", "rnn", dict(aux="predict")), ("SA-LSTM", "sa-lstm", {}), ("LM-LSTM", "lm-lstm", {}),
            ("Transformer", "transformer", {})]
    lines = ["| dataset | " + " | ".join(c[0] for c in cols) + " | Transformer shape |",
             "|---" * (len(cols) + 2) + "|"]
    for name, shape in (shapes or dataset_shapes()).items():
        counts, tf = [], None
        for _, arch, extra in cols:
            cfg = model_config(arch, {**shape, **extra})
            if arch == "transformer":
                counts.append(transformer_parameters(cfg))
                tf = cfg
            else:
                counts.append(build_model(arch, cfg).num_parameters()["total"])
        rl = counts[1]
        cells = [f"{c:,}" for c in counts[:-1]] + [f"{counts[-1]:,} ({counts[-1] / rl - 1:+.1%})"]
        lines.append(f"| {name} | " + " | ".join(cells) +
                     f" | d_model {tf.d_model}, {tf.n_layers} layers, d_ff {tf.d_ff} |")
    return "\n".join(lines)
