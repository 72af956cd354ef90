"""The vendored static files: byte for byte the ones VENDORED.md records, and served."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from mailvet.web.app import HTMX, HTMX_SSE, SCALAR, SCALAR_CSS, STATIC_DIR
from tests.web.shell_helpers import client, shell

pytestmark = pytest.mark.pipeline

ROW = re.compile(r"^\| `(?P<file>[^`]+)` \|.*\| `(?P<sha>[0-9a-f]{64})` \|$", re.MULTILINE)


def recorded() -> dict[str, str]:
    return {m["file"]: m["sha"] for m in ROW.finditer((STATIC_DIR / "VENDORED.md").read_text())}


@pytest.mark.unit
def test_every_vendored_file_has_the_recorded_sha256() -> None:
    table = recorded()
    vendored = {
        str(p.relative_to(STATIC_DIR))
        for p in (STATIC_DIR / "vendor").iterdir()
        if p.suffix in (".js", ".css")
    }
    assert set(table) == vendored == {HTMX, HTMX_SSE, SCALAR, SCALAR_CSS}
    for name, sha in table.items():
        assert hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest() == sha, name


async def test_the_pages_load_the_vendored_files_and_they_are_served(tmp_path: Path) -> None:
    async with shell(tmp_path) as s, client(s.app) as c:
        page = (await c.get("/")).text
        for name in (HTMX, HTMX_SSE, "app.css"):
            assert f'"/static/{name}"' in page
            answer = await c.get(f"/static/{name}")
            assert answer.status_code == 200, name
            assert answer.content == (STATIC_DIR / name).read_bytes()
            assert "max-age=3600" in answer.headers["cache-control"]
        assert (await c.get("/static/HTMX.js")).status_code == 404
