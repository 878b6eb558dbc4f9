"""Supervised truncation: the one parser of its spellings, "full" (or None) and K >= 0 steps.

Pure Python, without torch, so that the run-config schema (auxrnn.models.config, model.truncate) checks a
value with the very function AuxModel(truncate=) parses it with: one rule and one message for both.
"""
from __future__ import annotations

FULL = "full"  # the spelling of full BPTT in a config (None in the library)


def parse_truncate(value, key: str = "truncate") -> int | None:
    """Supervised BPTT steps: "full" or None -> None (full BPTT); K >= 0, an int or a string of digits -> K
    (0: no supervised gradient into the core). key: the name a refusal gives the value (e.g. model.truncate)."""
    if value is None or value == FULL:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key}={value!r} is invalid: use 'full' (full BPTT), 0 (no supervised gradient "
                         "into the core) or a positive number of steps")
    return value
