"""How the browser tests start Debian's Chromium (playwright's `executable_path` and `args`):
one copy for tests/web/test_shell_browser.py and the e2e harness."""

from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

# A browser test without Debian's Chromium is skipped, but not under
# MAILVET_TEST_SERVICES=required (`make test`, CI, which install it): there it runs and fails.
NEEDS_CHROMIUM = pytest.mark.skipif(
    shutil.which("chromium") is None and os.environ.get("MAILVET_TEST_SERVICES") != "required",
    reason="Debian chromium not installed (apt-get install chromium)",
)
