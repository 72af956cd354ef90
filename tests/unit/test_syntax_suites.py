"""The public suites' test cases (tests/data/syntax/*.json) under mailvet's rules.

Each data file names its source and licence; each case holds the suite's verdict and mailvet's
expected answer, and where they differ the id of a deliberate difference listed in
docs/syntax.md.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from mailvet.domain.address import check_syntax, reference_check
from mailvet.domain.offline import syntax_verdicts
from mailvet.domain.verdict import Reason

pytestmark = pytest.mark.unit

DATA = Path(__file__).parents[1] / "data" / "syntax"
DOCS = Path(__file__).parents[2] / "docs" / "syntax.md"
SUITES = ("email-validator", "isemail", "pyisemail", "validatorjs")


def load(suite: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / f"{suite}.json").read_text(encoding="utf-8"))
    return data


def documented_reasons() -> set[str]:
    """The ids in the first column of the table of differences in docs/syntax.md."""
    return set(re.findall(r"^\| `([a-z0-9-]+)` \|", DOCS.read_text(encoding="utf-8"), re.MULTILINE))


CASES = [
    pytest.param(case, id=f"{suite}-{i}")
    for suite in SUITES
    for i, case in enumerate(load(suite)["cases"])
]


def test_every_suite_is_there_and_names_its_source_and_licence() -> None:
    assert sorted(p.stem for p in DATA.glob("*.json")) == sorted(SUITES)
    for suite in SUITES:
        data = load(suite)
        assert list(data)[:2] == ["source", "licence"]
        assert "https://github.com/" in data["source"] and data["licence"]
        assert len(data["cases"]) > 50


@pytest.mark.parametrize("case", CASES)
def test_case(case: dict[str, Any]) -> None:
    cell = case["address"].strip()  # as the engine and the offline verdict do
    syntax = check_syntax(cell)
    assert syntax.valid is case["valid"], syntax.error
    assert syntax.normalized == case.get("normalized", "")
    assert syntax[:5] == reference_check(cell)[:5]
    if syntax.valid:
        assert f"{syntax.local}@{syntax.domain}" == syntax.normalized
    differs = case["valid"] != case["suite_valid"]
    assert ("reason" in case) is differs  # a deliberate difference says why, and only then


def test_every_difference_is_documented() -> None:
    used = {c["reason"] for s in SUITES for c in load(s)["cases"] if "reason" in c}
    documented = documented_reasons()
    assert used <= documented, used - documented
    assert {"display-name", "quoted-local", "long-local", "ip-literal"} <= used


@pytest.mark.parametrize("suite", SUITES)
def test_the_offline_verdict_agrees(suite: str) -> None:
    cases = load(suite)["cases"]
    verdicts = syntax_verdicts([c["address"] for c in cases])
    for case, verdict in zip(cases, verdicts, strict=True):
        assert (verdict.reason is Reason.INVALID_SYNTAX) is not case["valid"], case
        assert verdict.normalized == case.get("normalized", ""), case
