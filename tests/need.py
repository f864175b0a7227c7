"""The one rule for a test whose requirement is missing (a system package, an optional library, cores):
skip on a developer's machine, fail in CI (`CI=true`), where .ci/run installs everything the tests need.

Test modules import it as `from need import need` (tests/conftest.py puts this folder on sys.path)."""

from __future__ import annotations

import os

import pytest


def need(condition: bool, why: str) -> None:
    """Skip unless `condition`; in CI (`CI=true`) a missing requirement is a failure, not a skip."""
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI: {why}")
    pytest.skip(why)
