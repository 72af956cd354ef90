"""Server-Sent Events for tests and benches: a pure line parser, fed the lines of a stream
(sync or async), that hands back each complete event."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

EVENT = re.compile(r"^event: (\w+)$")


@dataclass
class SseParser:
    """`feed(line)` each line of the stream (without its line break); an (event, data) pair
    comes back at the blank line that ends an event with data, None otherwise."""

    event: str = "message"
    data: list[str] = field(default_factory=list)

    def feed(self, line: str) -> tuple[str, str] | None:
        if found := EVENT.match(line):
            self.event = found.group(1)
        elif line.startswith("data:"):
            self.data.append(line[5:].removeprefix(" "))
        elif line == "":
            done = (self.event, "\n".join(self.data)) if self.data else None
            self.event, self.data = "message", []
            return done
        return None
