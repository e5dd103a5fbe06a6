"""Fixtures for the unit tests.

- ``parser_impl``: the HTTP head parser module, once as the compiled extension
  (``fastgw._core.http_parser``) and once as its pure-Python twin. If the extension is not
  built, its runs fail (build it with ``python setup.py build_ext --inplace``), unless
  ``FASTGW_PURE=1`` asks for the twin alone.
- ``compiled_parser``: the extension alone, for tests that compare it with the twin.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

PURE_ONLY = os.environ.get("FASTGW_PURE") == "1"
PARSER_IMPLEMENTATIONS = ["pure"] if PURE_ONLY else ["compiled", "pure"]


def _compiled() -> ModuleType:
    try:
        return importlib.import_module("fastgw._core.http_parser")
    except ImportError as exc:
        pytest.fail(
            f"the compiled parser is not built ({exc}): run "
            "`python setup.py build_ext --inplace`, or set FASTGW_PURE=1 to test the twin only",
            pytrace=False,
        )


@pytest.fixture(scope="session", params=PARSER_IMPLEMENTATIONS)
def parser_impl(request: pytest.FixtureRequest) -> ModuleType:
    if request.param == "pure":
        return importlib.import_module("fastgw._core.pure_parser")
    return _compiled()


@pytest.fixture(scope="session")
def compiled_parser() -> ModuleType:
    if PURE_ONLY:
        pytest.skip("FASTGW_PURE=1: only the pure-Python parser is tested")
    return _compiled()
