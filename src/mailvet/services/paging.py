"""One page of a longer list, as the dashboard, the admin pages and the ledger history read
them: the items of the page, how many there are in all, and where the page starts."""

from __future__ import annotations

from typing import Generic, TypeVar

import msgspec

T = TypeVar("T")
MAX_PAGE_SIZE = 100


class Page(msgspec.Struct, Generic[T], frozen=True):
    """`items` from `offset` on (at most `limit` of them); `total`: all there are."""

    items: list[T]
    total: int
    offset: int
    limit: int

    @property
    def has_more(self) -> bool:
        return self.offset + len(self.items) < self.total


def window(offset: int, limit: int) -> tuple[int, int]:
    """`offset` and `limit` as a query takes them: offset >= 0, 1 <= limit <= MAX_PAGE_SIZE."""
    return max(0, offset), max(1, min(limit, MAX_PAGE_SIZE))
