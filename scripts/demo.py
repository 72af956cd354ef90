"""`make demo`: validate examples/sample.csv end to end on the embedded default.

The embedded default is the whole pipeline in one process: in-process bus, a local storage
folder and SQLite. This machine may have no route to the internet (or port 25 may be
blocked), so the demo points mailvet's DNS and SMTP at the project's local mail world
(tests/mailworld: a DNS server and scripted mail servers on 127.0.0.x) -- the same world the
tests use. On a machine that can reach the internet on port 25, run
`mailvet validate your-list.csv` directly instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.mailworld.world import standard_world  # noqa: E402


def main() -> int:
    source = ROOT / "examples" / "sample.csv"
    out_dir = ROOT / "examples" / "out"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / "sample.mailvet.csv"
    with standard_world() as world:
        env = {
            **os.environ,
            **world.env(),
            "MAILVET_DNS_TIMEOUT": "1.0",
            "MAILVET_DATA_DIR": str(out_dir / "data"),
        }
        mailvet = Path(sys.executable).with_name("mailvet")
        print(f"$ mailvet validate {source.relative_to(ROOT)} -o {out.relative_to(ROOT)}", flush=True)
        code = subprocess.call([str(mailvet), "validate", str(source), "-o", str(out)], env=env)
    if code == 0:
        print(f"\nfirst rows of {out.relative_to(ROOT)}:")
        with out.open(encoding="utf-8") as handle:
            for _ in range(6):
                print("  " + handle.readline().rstrip())
    return code


if __name__ == "__main__":
    sys.exit(main())
