"""Fixtures for integration tests (keep small and namespaced)."""

from __future__ import annotations

import os
import shutil

import pytest


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Path of a headless-capable Chromium (Debian package ``chromium``).

    Skips with a clear reason when absent, fails when ``CI`` is set
    (``scripts/install_system_deps.sh`` installs it there).
    """
    found = os.environ.get("CHROMIUM") or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None
    )
    if not found:
        msg = "chromium not installed (apt-get install -y chromium)"
        if os.environ.get("CI"):
            pytest.fail(msg + " - required when CI is set")
        pytest.skip(msg)
    return found
