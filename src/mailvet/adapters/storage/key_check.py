"""Object keys are relative POSIX paths such as `validation/uploaded/<job_id>`."""

from __future__ import annotations


def check_key(key: str, *, prefix: bool = False) -> str:
    """Return `key` unchanged, or raise ValueError if it could escape the store.

    A key is non-empty and relative, and every part is a plain name (no `..`, `.` or empty
    part). A prefix may also end with `/`.
    """
    body = key[:-1] if prefix and key.endswith("/") else key
    if not body or body.startswith("/") or "\\" in body or "\x00" in body:
        raise ValueError(f"bad object key: {key!r}")
    if any(part in ("", ".", "..") for part in body.split("/")):
        raise ValueError(f"bad object key: {key!r}")
    return key
