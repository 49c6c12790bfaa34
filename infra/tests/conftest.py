"""Fixtures of the tests of infra/'s checks: the checks' modules on the path, fresh copies of
the real templates and definitions (a test may edit its own copy)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

sys.dont_write_bytecode = True  # no __pycache__ in the work tree
INFRA = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(INFRA))

import cfn  # noqa: E402


@pytest.fixture
def templates() -> dict[str, dict[str, Any]]:
    """The three templates, by file name."""
    return {path.name: cfn.load(path) for path in cfn.TEMPLATES}


@pytest.fixture
def central() -> dict[str, Any]:
    return cfn.load(INFRA / "central-account.yaml")


@pytest.fixture
def names() -> dict[str, Any]:
    return json.loads((INFRA / "names.json").read_text())


@pytest.fixture
def definition() -> dict[str, Any]:
    """infra/pipeline.json."""
    return json.loads((INFRA / "pipeline.json").read_text())

