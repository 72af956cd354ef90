"""How the browser tests start Debian's Chromium (playwright's `executable_path` and `args`):
one copy for tests/web/test_shell_browser.py and the e2e harness."""

from __future__ import annotations

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
