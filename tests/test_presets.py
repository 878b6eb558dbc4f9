"""Presets: each resolves to exactly the configuration recorded in tests/data/presets_resolved.json."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from auxrnn.train.config import build_config, list_presets

RESOLVED = json.loads((Path(__file__).parent / "data" / "presets_resolved.json").read_text())


def test_the_snapshot_covers_every_shipped_preset():
    assert sorted(RESOLVED) == list_presets()


@pytest.mark.parametrize("name", sorted(RESOLVED))
def test_every_preset_resolves_to_its_recorded_config(name):
    assert build_config(name).to_dict() == RESOLVED[name]
