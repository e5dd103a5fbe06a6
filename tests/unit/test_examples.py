"""Every configuration under examples/ must load: examples are documentation that is tested.

The glob picks up new examples without touching this file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fastgw.config import load_config
from fastgw.config.summary import summarize

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SUFFIXES = {".yaml", ".yml", ".toml", ".json"}
FILES = sorted(path for path in EXAMPLES.rglob("*") if path.suffix in SUFFIXES)


def test_there_are_examples() -> None:
    assert FILES, f"no configuration files under {EXAMPLES}"


@pytest.mark.parametrize("path", FILES, ids=lambda path: str(path.relative_to(EXAMPLES)))
def test_example_validates(path: Path) -> None:
    config = load_config(str(path))
    assert summarize(config, str(path)).startswith(f"OK: {path}")
