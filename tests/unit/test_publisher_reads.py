"""The publisher cuts a file's chunks in a thread, several per trip: every trip waits for a
turn of an event loop that a network job keeps busy."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any

import pytest

from mailvet.pipeline.publisher import CHUNKS_PER_READ, _iterate

pytestmark = pytest.mark.unit


async def test_chunks_are_cut_several_per_trip_to_the_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trips = 0
    to_thread = asyncio.to_thread

    async def counted(fn: Callable[..., Any], /, *args: Any) -> Any:
        nonlocal trips
        trips += 1
        return await to_thread(fn, *args)

    monkeypatch.setattr(asyncio, "to_thread", counted)
    chunks: list[Any] = [(n, [f"u{n}@x.com"], "") for n in range(20)]
    got = [chunk async for chunk in _iterate(iter(chunks))]
    assert got == chunks
    assert trips == math.ceil(20 / CHUNKS_PER_READ) + 1  # the last finds the end (was 21)


async def test_a_failing_file_fails_the_read() -> None:
    def chunks() -> Any:
        yield (0, ["a@x.com"], "")
        raise ValueError("the file changed")

    with pytest.raises(ValueError, match="changed"):
        [chunk async for chunk in _iterate(chunks())]
