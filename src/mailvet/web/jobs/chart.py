"""The counts of a finished job as a bar chart: geometry computed here, the SVG written by
the template (jobs/_chart.html), where every label goes through Jinja's escaping.

Two groups: rows per status (deliverable, undeliverable, risky, unknown, in that order) and
rows per reason (largest first). Each bar's width is its share of the largest count of its
group, so the chart needs no script and no inline style (the CSP forbids both).
"""

from __future__ import annotations

import msgspec

from mailvet.domain.job import JobCounts
from mailvet.domain.verdict import Status

BAR_HEIGHT = 18
GAP = 6
LABEL_WIDTH = 190
BAR_SPACE = 300
COUNT_SPACE = 80
WIDTH = LABEL_WIDTH + BAR_SPACE + COUNT_SPACE
GROUP_TITLE = 26
STATUS_ORDER = [status.value for status in Status]
COLOURS = {
    Status.DELIVERABLE.value: "#1f7a3a",
    Status.UNDELIVERABLE.value: "#b3261e",
    Status.RISKY.value: "#a86400",
    Status.UNKNOWN.value: "#5f6b7a",
}
REASON_COLOUR = "#2f5fa7"


class Bar(msgspec.Struct, frozen=True):
    label: str
    count: int
    y: int
    width: int
    colour: str

    @property
    def text_y(self) -> int:
        return self.y + BAR_HEIGHT - 4


class Group(msgspec.Struct, frozen=True):
    title: str
    title_y: int
    bars: list[Bar]


class Chart(msgspec.Struct, frozen=True):
    width: int
    height: int
    label_width: int
    bar_height: int
    count_x: int
    groups: list[Group]
    total: int


def chart_of(counts: JobCounts) -> Chart:
    statuses = sorted(
        counts.statuses.items(),
        key=lambda item: (
            STATUS_ORDER.index(item[0]) if item[0] in STATUS_ORDER else len(STATUS_ORDER),
            item[0],
        ),
    )
    reasons = sorted(counts.reasons.items(), key=lambda item: (-item[1], item[0]))
    groups: list[Group] = []
    y = 0
    for title, items, by_status in (
        ("Rows per status", statuses, True),
        ("Rows per reason", reasons, False),
    ):
        if not items:
            continue
        title_y = y + GROUP_TITLE - 8
        y += GROUP_TITLE
        top = max(count for _, count in items) or 1
        bars = []
        for label, count in items:
            colour = COLOURS.get(label, REASON_COLOUR) if by_status else REASON_COLOUR
            width = max(1, round(BAR_SPACE * count / top)) if count else 0
            bars.append(Bar(label=label, count=count, y=y, width=width, colour=colour))
            y += BAR_HEIGHT + GAP
        groups.append(Group(title=title, title_y=title_y, bars=bars))
    return Chart(
        width=WIDTH,
        height=max(y, 1),
        label_width=LABEL_WIDTH,
        bar_height=BAR_HEIGHT,
        count_x=LABEL_WIDTH + BAR_SPACE + 8,
        groups=groups,
        total=sum(counts.statuses.values()),
    )
