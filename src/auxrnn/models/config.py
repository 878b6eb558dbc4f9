"""What a run's model is, as plain data: `model.*` (ModelConfig) and `arch.*` (ArchConfig), with their checks.

Standard library only (no torch, no model code), so that the run-config schema (auxrnn.train.config)
can import it as a leaf. The modules these configs describe are in the sibling modules of this package.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from auxrnn.core.truncation import FULL, parse_truncate  # pure Python: the one parser AuxModel uses too

AUX_ALIASES = {"none": (), "both": ("reconstruct", "predict")}  # model.aux spellings that are not objective names
PHASES = ("pretrain", "train")
POSITIONS = ("learned", "sinusoidal")
READOUTS = ("mean", "cls")
ENCODERS = ("embedding", "scalar", "linear")  # the kinds auxrnn.core.encoders.Encoder builds
AUX_STARTS = ("zeros", "main")      # the p-LSTM predictor's first state (auxrnn.core.objectives.Predict)
CELLS = ("lstm", "gru")              # the cells auxrnn.core.recurrent.Recurrent builds


def bad_value(key: str, value: Any, want: str) -> ValueError:
    """The error every config check raises: the key, the value and what is wanted."""
    return ValueError(f"{key}={value!r} is invalid: {want}")


def check_choice(key: str, value: Any, allowed: tuple) -> None:
    """Refuse a value outside `allowed`, listing the choices."""
    if value not in allowed:
        raise bad_value(key, value, f"choose one of {', '.join(map(str, allowed))}")


# Real-valued inputs (channels of 0: the arrays source with quantiser=none) need a real-valued model.
REAL_INPUTS = ("gives real-valued inputs (data.options.quantiser=none): read them with model.encoder=linear and "
               "real-valued objectives (model.aux=reconstruct_values, predict_values or none), or quantise them "
               "(data.options.quantiser=quantile)")


def check_fields(cfg, choices: dict[str, tuple], positive: tuple[str, ...], keys: dict[str, str] | None = None) -> None:
    """Checks every model config shares: named choices, sizes >= 1, dropout in [0, 1), one vocabulary per channel.

    keys: the run-config key of a field that is not `model.<field>` (a refusal names the key a user sets).
    """
    keys = keys or {}
    for key, allowed in choices.items():
        check_choice(keys.get(key, f"model.{key}"), getattr(cfg, key), allowed)
    for key in positive:
        if int(getattr(cfg, key)) < 1:
            raise bad_value(keys.get(key, f"model.{key}"), getattr(cfg, key), "must be >= 1")
    if not 0.0 <= cfg.dropout < 1.0:
        raise bad_value("model.dropout", cfg.dropout, "must be in [0, 1)")
    if cfg.channels and all(c == 0 for c in cfg.channels):  # real values (quantiser=none)
        if getattr(cfg, "encoder", "") != "linear":
            raise ValueError(f"the data {REAL_INPUTS}")
    elif not cfg.channels or min(cfg.channels) < 2:
        raise bad_value("model.channels", cfg.channels, "one vocabulary size >= 2 per input channel (0 per channel "
                        "for real values read by model.encoder=linear)")


def config_dict(cfg) -> dict:
    """A model config as plain YAML/JSON/checkpoint-friendly values."""
    d = asdict(cfg)
    d["channels"] = list(cfg.channels)
    return d


def parse_aux(aux: Any) -> tuple[str, ...]:
    """model.aux read the one way: the objective names it lists, in order ("both" = reconstruct + predict,
    "none" = none). A malformed spelling (an empty or a repeated name) is refused here; whether each name is a
    registered objective is auxrnn.models.objectives.objective_classes' check (it needs the objectives)."""
    if isinstance(aux, str) and aux in AUX_ALIASES:
        return AUX_ALIASES[aux]
    names = tuple(aux.split("+")) if isinstance(aux, str) else ()
    if not names or not all(names) or len(set(names)) != len(names):
        raise bad_value("model.aux", aux, "use 'none', 'both' or objective names joined by '+', each once "
                        "(e.g. reconstruct+predict)")
    return names


@dataclass
class ModelConfig:
    """The (r-/p-)LSTM: architecture and truncation. Defaults: the paper's (§2), else decisions M1-M18."""

    channels: tuple[int, ...] = (256,)  # vocabulary size of each input channel, 0 for a real one (from the data)
    n_classes: int = 10                # classes of the task (filled from the data)
    encoder: str = "embedding"          # how an input element enters the LSTM: embedding, scalar or linear  # M13
    embed_dim: int = 128                # width of the input embedding
    cell: str = "lstm"                  # the recurrent cell
    hidden: int = 128                   # units of the main recurrent cell
    aux: str = "reconstruct"            # auxiliary objectives joined by "+" (reconstruct, predict, ...); both; none
    n_anchors: int = 1                  # anchors per sequence, each with its auxiliary subsequence
    subseq_len: int = 600               # L, the length of each auxiliary subsequence
    truncate: int | str = 300           # supervised BPTT: "full", K > 0, or 0 (no gradient into the core)
    aux_truncate: int = 300             # auxiliary BPTT: r-LSTM steps before each anchor; p-LSTM segment length
    aux_hidden: int = 256               # units of each layer of the auxiliary decoder
    aux_layers: int = 2                 # layers of the auxiliary decoder
    aux_start: str = "zeros"            # p-LSTM predictor's first state: zeros, or main (the state S_a)  # M12
    ffn_hidden: int = 256               # width of the two-layer classifier on the last state
    dropout: float = 0.0                # dropout of the classifier  # decisions M14, B5
    teacher_forcing: bool = True        # the decoder reads the true previous element  # decision M7
    chunk: int = 256                    # steps per call of the no-grad read (an upper bound on CPU)  # M16
    forget_bias: float = 1.0            # initial LSTM forget-gate bias, every LSTM  # decision M17

    def __post_init__(self):
        self.channels = tuple(int(c) for c in self.channels)

    @property
    def objective_names(self) -> tuple[str, ...]:
        """model.aux as the names of the objectives it lists (parse_aux); every reader of model.aux uses this."""
        return parse_aux(self.aux)

    def validate(self) -> "ModelConfig":
        """Every check of model.*; raises ValueError naming the key. Returns self.

        Runs where a config enters: the run-config schema (auxrnn.train.config, again once the data fills
        channels and n_classes) and the modules built from one (AuxRNN). model.truncate keeps its config
        spelling ("full" or K), normalised; AuxModel parses it with the same parse_truncate.
        """
        check_fields(self, {"cell": CELLS, "encoder": ENCODERS, "aux_start": AUX_STARTS},
                     ("n_anchors", "aux_truncate", "embed_dim", "hidden", "aux_hidden", "aux_layers", "ffn_hidden",
                      "chunk", "n_classes"))
        parse_aux(self.aux)
        steps = parse_truncate(self.truncate, "model.truncate")
        self.truncate = FULL if steps is None else steps
        if self.subseq_len < 2:
            raise bad_value("model.subseq_len", self.subseq_len, "must be >= 2 (one element fed, one predicted)")
        return self

    def to_dict(self) -> dict:
        return config_dict(self)


@dataclass(frozen=True)
class Arch:
    """An architecture as the run config knows it, without torch: arch.name's choices, the pretraining rule the
    schema checks, and which model.* keys it reads. Its builder is registered by `@register_arch` in `module`
    (auxrnn.models.architectures), imported on first use.

    pretraining: "optional" (needs model.aux objectives when asked for), "never" or "required".
    objectives: it builds the objectives model.aux names (they are checked, and must fit the data).
    why: what a refused pretraining setting is told.
    """

    module: str
    reads: str                         # which model.* keys it reads (--help-keys and the run header say it)
    pretraining: str = "optional"
    objectives: bool = False
    why: str = ""


TRANSFORMER_READS = ("model.channels, n_classes, encoder, ffn_hidden and dropout as its own; the other size keys "
                     "(embed_dim, cell, hidden, aux, aux_hidden, aux_layers) only describe the r-LSTM "
                     "whose parameter count it matches, unless arch.d_model and arch.n_layers are both set")
# Every architecture arch.name may choose (a test or another package adds one with register_arch(declare=...)).
ARCHS: dict[str, Arch] = {
    "rnn": Arch("auxrnn.models.auxrnn", "every model.* key (LSTM, r-LSTM or p-LSTM by model.aux)",
                objectives=True),
    "transformer": Arch("auxrnn.models.transformer", TRANSFORMER_READS, pretraining="never",
                        why="the Transformer has no auxiliary loss, so it has no pretraining phase"),
    "sa-lstm": Arch("auxrnn.models.pretrained_lstm", "model.* of the plain LSTM (model.aux is ignored), with the "
                    "r-LSTM decoder (aux_hidden, aux_layers, subseq_len, aux_truncate) as its pretraining head",
                    pretraining="required", why="without pretraining it would be a plain LSTM: use arch.name=rnn "
                    "model.aux=none for that"),
    "lm-lstm": Arch("auxrnn.models.pretrained_lstm", "model.* of the plain LSTM (model.aux and the decoder's keys "
                    "are ignored); model.aux_truncate is its pretraining window", pretraining="required",
                    why="without pretraining it would be a plain LSTM: use arch.name=rnn model.aux=none for that"),
}


@dataclass
class ArchConfig:
    """Which model of the pipeline trains (auxrnn.models.build); model.* describes the LSTM.

    rnn: AuxRNN(model.*) (LSTM, r-LSTM, p-LSTM by model.aux). sa-lstm / lm-lstm: the plain LSTM of model.*
    (model.aux is ignored) with a sequence-autoencoder / language-model pretraining phase. transformer:
    the knobs below; 0 for d_model / n_layers = searched so that its parameter count matches the r-LSTM
    that model.* describes (auxrnn.models.transformer.matched_transformer_config).
    """

    name: str = "rnn"                  # which model trains: the (r-/p-)LSTM of model.*, or a baseline
    d_model: int = 0                   # transformer width; 0 = matched to the r-LSTM's parameter count
    n_layers: int = 0                  # transformer depth; 0 = matched
    n_heads: int = 4                   # transformer attention heads
    positions: str = "sinusoidal"      # transformer positions (learned: a max_len x d_model table)
    readout: str = "mean"              # transformer readout: mean over real elements, or a cls token
    checkpoint: bool = False           # recompute each layer in backward (less activation memory)
    max_len: int = 0                   # learned positions: table length; 0 = the data's longest sequence

    def validate(self) -> "ArchConfig":
        """Choices and sizes of arch.*; raises ValueError naming the key. Returns self."""
        check_choice("arch.name", self.name, tuple(ARCHS))
        check_choice("arch.positions", self.positions, POSITIONS)
        check_choice("arch.readout", self.readout, READOUTS)
        for key in ("d_model", "n_layers", "max_len"):
            if getattr(self, key) < 0:
                raise bad_value(f"arch.{key}", getattr(self, key), "must be >= 0 (0 = chosen for you)")
        if self.n_heads < 1:
            raise bad_value("arch.n_heads", self.n_heads, "must be >= 1")
        if self.d_model and self.d_model % self.n_heads:
            raise bad_value("arch.d_model", self.d_model, f"must be a multiple of arch.n_heads={self.n_heads}")
        return self

    def transformer_overrides(self) -> dict[str, Any]:
        """The TransformerConfig fields arch.* fixes (d_model / n_layers only when > 0; the rest is matched)."""
        out: dict[str, Any] = dict(n_heads=self.n_heads, positions=self.positions, readout=self.readout,
                                   checkpoint=self.checkpoint)
        if self.d_model:
            out["d_model"] = self.d_model
        if self.n_layers:
            out["n_layers"] = self.n_layers
        if self.positions == "learned" and self.max_len:
            out["max_len"] = self.max_len
        return out
