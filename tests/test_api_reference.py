"""The API reference builds from the docstrings with pdoc, without a warning (the HTML is not committed)."""
import warnings

import pytest

MODULES = ("auxrnn", "auxrnn.core", "auxrnn.models", "auxrnn.data", "auxrnn.train")  # the library and its layers


def test_api_reference_builds_without_warnings(tmp_path):
    pdoc = pytest.importorskip("pdoc", reason="pdoc is in the dev extra: pip install -e '.[dev]'")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pdoc.pdoc(*MODULES, output_directory=tmp_path)
    assert not [str(w.message) for w in caught]
    for page in ("auxrnn.html", "auxrnn/core/model.html", "auxrnn/core/objectives.html", "auxrnn/models.html"):
        assert (tmp_path / page).is_file(), page
    assert "AuxModel" in (tmp_path / "auxrnn/core/model.html").read_text()
    assert "ReconstructValues" in (tmp_path / "auxrnn/core/objectives.html").read_text()
