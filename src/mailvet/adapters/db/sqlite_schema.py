"""A new embedded SQLite file made in one step from a schema script, without Alembic.

Running the Alembic migrations on a fresh file costs more than a whole small `mailvet
validate` (SQLAlchemy, Alembic and aiosqlite imported, every revision loaded and replayed one
DDL statement at a time; bench/syntax_bench.py prints the fixed cost
of a 1-row file on a fresh data folder). `sqlite_schema.sql`, beside this module, is the
dump (`sqlite3.Connection.iterdump`) of a file the migrations built: every table, index and
row, the `alembic_version` stamp included. `create_fresh` replays it in one transaction into a
private temporary file, then links that file to its name (an atomic create: a file another
process made first is left alone), so a new file is exactly what the migrations make, in one
short transaction instead.

The script says which revision it is of (`head`) and of which migration sources
(`migrations`: a digest of `migrations/env.py` and every `migrations/versions/*.py`). If
either differs from this checkout the script is not used (the migrations run as before), and
tests/integration/test_sqlite_schema.py fails until it is written again:

    .venv/bin/python -m mailvet.adapters.db.sqlite_schema

The test also builds one file each way and compares them (schema, rows, journal mode).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import sys
import tempfile
import uuid
from pathlib import Path

from mailvet.adapters.db.migrate import HEAD, SCRIPT_LOCATION
from mailvet.adapters.db.sqlite import sqlite_path

SCRIPT = Path(__file__).resolve().parent / "sqlite_schema.sql"

_HEAD_LINE = "-- head: "
_DIGEST_LINE = "-- migrations: "


def migrations_digest(location: Path = SCRIPT_LOCATION) -> str:
    """sha256 over the migration sources (env.py, versions/*.py), names and bytes."""
    digest = hashlib.sha256()
    sources = [location / "env.py", *sorted((location / "versions").glob("*.py"))]
    for source in sources:
        digest.update(source.relative_to(location).as_posix().encode())
        digest.update(b"\0")
        digest.update(source.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def script_header(text: str) -> tuple[str | None, str | None]:
    """The (head, migrations digest) a schema script says it was made from."""
    head = digest = None
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        if line.startswith(_HEAD_LINE):
            head = line.removeprefix(_HEAD_LINE).strip()
        elif line.startswith(_DIGEST_LINE):
            digest = line.removeprefix(_DIGEST_LINE).strip()
    return head, digest


def current_script(script: Path = SCRIPT) -> str | None:
    """The script's text when it was made from this checkout's migrations at HEAD."""
    try:
        text = script.read_text(encoding="utf-8")
    except OSError:
        return None
    head, digest = script_header(text)
    if head != HEAD or digest != migrations_digest():
        return None
    return text


def create_fresh(url: str, *, script: Path = SCRIPT) -> bool:
    """Make the SQLite file of `url` from the schema script if there is no file yet.

    True when the file was made here; False when there is nothing to do here (not a SQLite
    file URL, a file already there, made meanwhile by another process, or a script that is not
    of this checkout's migrations): the caller then migrates as usual, which also waits for a
    process migrating the same file right now."""
    path = sqlite_path(url)
    if path is None or path.exists():
        return False
    text = current_script(script)
    if text is None:
        _log_stale(script)
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    # a new name of our own (sqlite3 creates it with the usual permissions, as for the migrations)
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.new")
    try:
        _replay(temp, text)
        try:
            os.link(temp, path)  # fails if the name is taken: never over another's file
        except OSError:
            return False  # FileExistsError, or links not supported here: migrate as usual
        return True
    finally:
        for leftover in (temp, Path(f"{temp}-wal"), Path(f"{temp}-shm")):
            leftover.unlink(missing_ok=True)


def _replay(database: Path, text: str) -> None:
    with contextlib.closing(sqlite3.connect(database, isolation_level=None)) as conn:
        conn.executescript(text)  # the dump is one BEGIN TRANSACTION ... COMMIT
        # what make_database leaves in a migrated file (journal_mode is kept in the file)
        conn.execute("PRAGMA journal_mode=WAL")


def _log_stale(script: Path) -> None:
    import structlog

    structlog.get_logger(__name__).info(
        "sqlite_schema_script_stale",
        script=str(script),
        hint="python -m mailvet.adapters.db.sqlite_schema",
    )


def render(database: Path) -> str:
    """The schema script of a SQLite file (built by the migrations) at HEAD."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
        (revision,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        if revision != HEAD:
            raise ValueError(f"{database} is at revision {revision}, not {HEAD}")
        body = "\n".join(conn.iterdump())
    header = (
        "-- The embedded SQLite schema, as the Alembic migrations build it (a dump of a file\n"
        "-- they made). Written by `python -m mailvet.adapters.db.sqlite_schema`: do not edit.\n"
        f"{_HEAD_LINE}{HEAD}\n"
        f"{_DIGEST_LINE}{migrations_digest()}\n"
    )
    return f"{header}{body}\n"


def build_with_migrations(database: Path) -> None:
    """A new SQLite file at `database`, built by the Alembic migrations (the slow way)."""
    from mailvet.adapters.db import migrate

    migrate.upgrade(f"sqlite+aiosqlite:///{database}")


def write_script(script: Path = SCRIPT) -> str:
    """Build a file with the migrations, dump it into `script`; the text written."""
    with tempfile.TemporaryDirectory(prefix="mailvet-schema-") as folder:
        database = Path(folder) / "mailvet.db"
        build_with_migrations(database)
        text = render(database)
    script.write_text(text, encoding="utf-8")
    return text


def main() -> int:
    write_script()
    print(f"wrote {SCRIPT} (head {HEAD})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
