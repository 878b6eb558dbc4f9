"""Write presets_resolved.json: every shipped preset's fully resolved config (tests/test_presets.py holds them to it).

Run it only when a preset is meant to change what it trains: `python tests/data/write_presets_resolved.py`.
"""
from __future__ import annotations

import json
from pathlib import Path

from auxrnn.train.config import build_config, list_presets

OUT = Path(__file__).with_name("presets_resolved.json")


def resolved() -> dict[str, dict]:
    """{preset name: RunConfig.to_dict()} of every preset shipped with auxrnn."""
    return {name: build_config(name).to_dict() for name in list_presets()}


if __name__ == "__main__":
    OUT.write_text(json.dumps(resolved(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT} ({len(resolved())} presets)")
