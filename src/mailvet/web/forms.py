"""Small facts of the pages' forms that several areas share."""

from __future__ import annotations

from typing import Any

from litestar import Request

# the longest address a form takes (more than the 254 of RFC 5321, so the checker, not the
# form, says what is wrong with a long one); the rest is cut off before anything reads it
MAX_ADDRESS = 320


def is_htmx(request: Request[Any, Any, Any]) -> bool:
    """The request comes from htmx (it swaps a fragment in, not a whole page)."""
    return request.headers.get("hx-request") == "true"
