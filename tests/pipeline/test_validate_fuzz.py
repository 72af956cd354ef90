"""A fuzz test of the whole `validate` path (issue 7 §4) on CSV, TXT and XLSX lists made by
hypothesis (derandomized: the same cases on every run): every list either completes with
every input row once, in order (CSV: each record byte for byte, the mailvet_* cells after
it, formula-safe), or is refused with one clear line and nothing at the output path.

The use case runs in this process on in-memory adapters (one pipeline for all the cases,
a job per case), as `mailvet validate --checks syntax` runs it; a handful of cases go
through the real CLI in a subprocess."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailvet.adapters.storage.memory import MemoryStorage
from mailvet.bootstrap import Deps, build_deps
from mailvet.domain.verdict import RESULT_COLUMNS, Check
from mailvet.output_path import output_file
from mailvet.pipeline.runner import Pipeline
from mailvet.pipeline.submit import fetch_result, submit_file
from mailvet.settings import load_settings
from mailvet.tabular.render import FORMULA_STARTS, formula_safe
from tests.fakes import WatchedJobs

pytestmark = pytest.mark.pipeline

EXTRA = len(RESULT_COLUMNS)
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# each of up to BATCH lists: about 2,090 CSV, 360 TXT and 120 XLSX lists validated (~40 s)
CSV_EXAMPLES, TXT_EXAMPLES, XLSX_EXAMPLES = 600, 120, 40

_TEXT = st.text(
    alphabet=st.sampled_from(list("abcXYZ019@.-+=_ '\"é,;|\t\n") + ["\u00fc", "\u4e2d", "\u0130"]),
    max_size=12,
)
_LOCAL = st.text(alphabet=st.sampled_from(list("abcz09.+-=_'")), min_size=1, max_size=8)
_DOMAIN = st.sampled_from(["example.com", "gmail.com", "exämple.de", "b.co", "x", "", "-a.com"])
_ADDRESS = st.one_of(st.builds(lambda local, domain: f"{local}@{domain}", _LOCAL, _DOMAIN), _TEXT)


class Runner:
    """One pipeline on in-memory adapters; `validate` = submit, follow, fetch to `out`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.loop = asyncio.new_event_loop()
        self.jobs = WatchedJobs()
        self.deps: Deps = self.loop.run_until_complete(self._deps())
        self.pipeline = Pipeline(self.deps)
        self.loop.run_until_complete(self.pipeline.start())
        self.completed = 0
        self.refused = 0

    async def _deps(self) -> Deps:
        settings = load_settings({"MAILVET_DATA_DIR": str(self.folder / "data")})
        return await build_deps(settings, jobs=self.jobs, storage=MemoryStorage(), syntax_pool=None)

    def validate(self, source: Path, out: Path) -> tuple[int, str]:
        """(exit code, error line) as the CLI would give them."""
        return self.loop.run_until_complete(self._validate(source, out))

    def validate_many(self, pairs: list[tuple[Path, Path]]) -> list[tuple[int, str]]:
        """validate() of several lists at once (jobs side by side, as users would run them)."""

        async def all_of() -> list[tuple[int, str]]:
            return list(await asyncio.gather(*(self._validate(s, o) for s, o in pairs)))

        return self.loop.run_until_complete(all_of())

    async def _validate(self, source: Path, out: Path) -> tuple[int, str]:
        deps = self.deps
        job_id = await submit_file(deps.jobs, deps.storage, deps.bus, source, checks=Check.SYNTAX)
        status = await asyncio.wait_for(self.jobs.final(job_id), 30)
        if status.is_error:
            self.refused += 1
            return 2, (await deps.jobs.get(job_id)).error or status.value
        with output_file(out) as temp:
            await fetch_result(deps.jobs, deps.storage, job_id, temp)
        self.completed += 1
        return 0, ""

    def close(self) -> None:
        self.loop.run_until_complete(self.pipeline.stop())
        self.loop.run_until_complete(self.deps.close())
        self.loop.close()


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runner]:
    runner = Runner(tmp_path_factory.mktemp("fuzz"))
    yield runner
    runner.close()


def _refusal(code: int, error: str, out: Path) -> None:
    assert code == 2
    assert error and "\n" not in error and "Traceback" not in error, error
    assert not out.exists()


def _appended(tail: str, delimiter: str) -> list[str]:
    assert tail.startswith(delimiter), tail
    (cells,) = list(csv.reader([tail[1:]], delimiter=delimiter))
    assert len(cells) == EXTRA, cells
    assert not any(cell.startswith(FORMULA_STARTS) for cell in cells), cells
    return cells


@st.composite
def csv_lists(draw: st.DrawFn) -> tuple[bytes, list[str], str, str]:
    """(file bytes, raw records (terminators included), delimiter, terminator)."""
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    term = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    extra = draw(st.lists(st.sampled_from(["name", "id", "note", "x y"]), max_size=2, unique=True))
    header = extra[:]
    header.insert(draw(st.integers(0, len(extra))), "email")
    rows = draw(st.lists(st.lists(_TEXT, min_size=len(header), max_size=len(header)), max_size=25))
    where = header.index("email")
    for row in rows:
        row[where] = draw(_ADDRESS)
    records = []
    for row in [header, *rows]:
        text = io.StringIO()
        csv.writer(text, delimiter=delimiter, lineterminator="\r\n").writerow(row)  # quotes CR, LF
        records.append(text.getvalue()[:-2] + term)
        if draw(st.integers(0, 20)) == 0:
            records.append(term)  # a blank record stays where it is
    cut_end = draw(st.booleans())
    if records and cut_end:
        records[-1] = records[-1][: -len(term)] or records[-1]  # no terminator at the end
    return "".join(records).encode(), records, delimiter, term


BATCH = 8  # lists validated side by side per hypothesis example


def _pairs(folder: Path, count: int, suffix: str, result: str) -> list[tuple[Path, Path]]:
    pairs = [
        (folder / f"list{i}{suffix}", folder / f"list{i}.mailvet{result}") for i in range(count)
    ]
    for _, out in pairs:
        out.unlink(missing_ok=True)
    return pairs


def test_csv_lists(runner: Runner, tmp_path: Path) -> None:
    before = runner.completed

    @given(cases=st.lists(csv_lists(), min_size=1, max_size=BATCH))
    @settings(FUZZ, max_examples=CSV_EXAMPLES)
    def check(cases: list[tuple[bytes, list[str], str, str]]) -> None:
        pairs = _pairs(tmp_path, len(cases), ".csv", ".csv")
        for (source, _), case in zip(pairs, cases, strict=True):
            source.write_bytes(case[0])
        answers = runner.validate_many(pairs)
        for (_, out), case, answer in zip(pairs, cases, answers, strict=True):
            _check_csv(case, out, *answer)

    check()
    completed = runner.completed - before
    assert completed > CSV_EXAMPLES * 2  # most lists are usable ones
    print(f"csv lists: {completed} completed")


def _check_csv(case: tuple[bytes, list[str], str, str], out: Path, code: int, error: str) -> None:
    data, records, delimiter, term = case
    if code:
        _refusal(code, error, out)
        return
    result = out.read_bytes().decode()
    # the cells are appended with the delimiter mailvet detected: the list's own, or its
    # guess for a list of one column
    detected = result[len(records[0].rstrip("\r\n")) :][:1]
    assert detected in (",", ";", "\t", "|")
    if len(next(csv.reader([records[0]], delimiter=delimiter))) > 1:
        assert detected == delimiter, data  # else its records are other ones
    delimiter = detected
    pos = 0
    for raw in records:  # every record once, in order, byte for byte, cells after it
        ending = term if raw.endswith(term) else ""
        body = raw[: len(raw) - len(ending)]
        if body == "":
            assert result.startswith(ending, pos), (result[pos:], raw)
            pos += len(ending)
            continue
        assert result.startswith(body, pos), (result[pos:], raw)
        pos += len(body)
        end = result.find(term, pos) if ending else len(result)
        assert end >= 0
        _appended(result[pos:end], delimiter)
        pos = end + len(ending)
    assert pos == len(result), result[pos:]


@st.composite
def txt_lists(draw: st.DrawFn) -> tuple[bytes, list[str]]:
    term = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    line = st.one_of(_ADDRESS, st.just(""), st.just("  "))
    lines = [
        text
        for text in draw(st.lists(line, min_size=0, max_size=30))
        if not any(c in text for c in '\r\n,;|\t"')  # with a delimiter it is a CSV list
    ]
    return term.join(lines).encode() + (term.encode() if draw(st.booleans()) else b""), lines


def test_txt_lists(runner: Runner, tmp_path: Path) -> None:
    before = runner.completed

    @given(cases=st.lists(txt_lists(), min_size=1, max_size=BATCH))
    @settings(FUZZ, max_examples=TXT_EXAMPLES)
    def check(cases: list[tuple[bytes, list[str]]]) -> None:
        pairs = _pairs(tmp_path, len(cases), ".txt", ".csv")
        for (source, _), case in zip(pairs, cases, strict=True):
            source.write_bytes(case[0])
        answers = runner.validate_many(pairs)
        for (_, out), case, answer in zip(pairs, cases, answers, strict=True):
            _check_txt(case, out, *answer)

    check()
    print(f"txt lists: {runner.completed - before} completed")
    assert runner.completed - before > TXT_EXAMPLES * 2


def _check_txt(case: tuple[bytes, list[str]], out: Path, code: int, error: str) -> None:
    _, lines = case
    if code:
        _refusal(code, error, out)
        return
    rows = list(csv.reader(io.StringIO(out.read_text(), newline="")))
    emails = [line.strip() for line in lines if line.strip()]
    header, data_rows = rows[0], rows[1:]
    assert header[1:] == list(RESULT_COLUMNS)
    if header[0] != "email" or len(data_rows) < len(emails):
        assert header[0] == emails[0]  # the first line was taken for a header
        emails = emails[1:]
    assert [row[0] for row in data_rows] == [formula_safe(e) for e in emails]
    for row in data_rows:
        assert len(row) == 1 + EXTRA
        assert not any(cell.startswith(FORMULA_STARTS) for cell in row)


_XLSX_TEXT = st.text(
    alphabet=st.sampled_from(list("abcXYZ019@.-+=_ '\"é,;|") + ["\u4e2d"]), max_size=12
)


@st.composite
def xlsx_rows(draw: st.DrawFn) -> list[list[object]]:
    header: list[object] = ["email", "n"]
    cell = st.one_of(_XLSX_TEXT, st.integers(-1000, 1000), st.none())
    rows: list[tuple[object, object]] = draw(
        st.lists(
            st.tuples(_ADDRESS.filter(lambda a: "\n" not in a and "\t" not in a), cell),
            min_size=1,
            max_size=15,
        )
    )
    return [header, *[list(row) for row in rows]]


def test_xlsx_lists(runner: Runner, tmp_path: Path) -> None:
    from openpyxl import Workbook, load_workbook

    before = runner.completed

    @given(cases=st.lists(xlsx_rows(), min_size=1, max_size=BATCH))
    @settings(FUZZ, max_examples=XLSX_EXAMPLES)
    def check(cases: list[list[list[object]]]) -> None:
        pairs = _pairs(tmp_path, len(cases), ".xlsx", ".xlsx")
        for (source, _), rows in zip(pairs, cases, strict=True):
            book = Workbook()
            for row in rows:
                book.active.append(row)
            book.save(source)
        answers = runner.validate_many(pairs)
        for (_, out), rows, answer in zip(pairs, cases, answers, strict=True):
            check_one(rows, out, *answer)

    def check_one(rows: list[list[object]], out: Path, code: int, error: str) -> None:
        if code:
            _refusal(code, error, out)
            return
        sheet = load_workbook(out).active
        got = list(sheet.iter_rows())
        assert len(got) == len(rows)  # every row once, in order
        for cells, row in zip(got, rows, strict=True):
            values = [c.value for c in cells][: len(row)]
            values += [None] * (len(row) - len(values))
            assert values == [None if v == "" else v for v in row], (values, row)  # "" is no cell
            appended = cells[len(row) :]
            assert len(appended) <= EXTRA
            assert all(
                c.data_type in ("s", "n") and not isinstance(c.value, int | float)
                for c in appended
                if c.value is not None
            )
        assert [c.value for c in got[0][2:]] == list(RESULT_COLUMNS)

    check()
    print(f"xlsx lists: {runner.completed - before} completed")
    assert runner.completed - before > XLSX_EXAMPLES * 2


@pytest.mark.parametrize(
    ("name", "data", "code"),
    [
        ("ok.csv", b'id;email\n1;=1+1@example.com\n2;"a;b"@x.com\n\n3;-@y\n', 0),
        ("ok.txt", b"a@example.com\r\n+1@example.com\r\n\r\n", 0),
        ("binary.csv", bytes(range(256)) * 8, 2),
    ],
)
def test_the_real_cli(tmp_path: Path, name: str, data: bytes, code: int) -> None:
    source = tmp_path / name
    source.write_bytes(data)
    out = tmp_path / "result.csv"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILVET_")}
    env["MAILVET_DATA_DIR"] = str(tmp_path / "data")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mailvet.cli",
            "validate",
            str(source),
            "-o",
            str(out),
            "--checks",
            "syntax",
        ],
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == code, done.stderr
    if code:
        lines = done.stderr.decode().splitlines()
        assert len(lines) == 1 and lines[0].startswith("mailvet: error: "), lines
        assert not out.exists()
        assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".mailvet-tmp")] == []
        return
    result = out.read_bytes()
    if name.endswith(".csv"):
        for record in data.split(b"\n")[:-1]:
            assert record in result
    rows = list(
        csv.reader(
            io.StringIO(result.decode(), newline=""),
            delimiter=";" if "id;" in data.decode() else ",",
        )
    )
    for row in rows[1:]:
        assert not any(cell.startswith(FORMULA_STARTS) for cell in row[-EXTRA:]), row
