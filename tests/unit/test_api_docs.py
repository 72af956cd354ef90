"""docs/api.md stays true where a test can tell: its signature check, run as written, accepts
what domain/webhooks.py signs and refuses a changed body, another secret and an old time;
every route it shows a curl for is a route of the API; the job statuses it names are the
pipeline's."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from mailvet.domain.job import JobStatus
from mailvet.domain.webhooks import new_secret, sign

pytestmark = pytest.mark.unit

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_the_documented_check_verifies_our_signatures() -> None:
    [code] = [block for block in _python_blocks() if "def verify(" in block]
    scope: dict[str, Any] = {}
    exec(compile(code, str(DOC), "exec"), scope)  # noqa: S102 - our own document
    verify = scope["verify"]
    secret, body = new_secret(), b'{"id":"evt_1","type":"job.completed"}'
    now = int(time.time())
    header = sign(secret, body, timestamp=now)
    assert verify(secret, header, body)
    assert not verify(secret, header, body + b" ")
    assert not verify(new_secret(), header, body)
    assert not verify(secret, sign(secret, body, timestamp=now - 301), body)
    assert not verify(secret, "t=abc,v1=00", body)


def test_every_documented_route_exists() -> None:
    from mailvet.web.api import api_router
    from mailvet.web.api.compat import compat_router

    paths = {
        re.sub(r"\{[^}:]+(:[a-z]+)?\}", "{}", path)
        for router in (api_router(), compat_router())
        for route in router.routes
        for path in [route.path]
    }
    shown = re.findall(r"\$MAILVET(/api(?:/(?:[a-z0-9_-]+|\$JOB))+)", DOC.read_text())
    assert len(set(shown)) >= 9, shown
    for path in shown:
        normal = re.sub(r"/[0-9a-f]{32}|/\$JOB", "/{}", path)
        assert normal in paths, (path, sorted(paths))


def test_the_job_statuses_named_are_the_pipelines() -> None:
    """Every status the document names (`pending_start`, `file_...`, `error_...`) is one of
    domain/job.JobStatus, and it names them all."""
    named = set(re.findall(r"`((?:pending|file|error)_[a-z_]+)`", DOC.read_text()))
    assert named == {status.value for status in JobStatus}
