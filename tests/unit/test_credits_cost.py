"""A list's cost (pipeline/cost.py): its distinct valid addresses, the fast way equal to
check_syntax on the public suites and on made-up spellings, and counted from a file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailvet.domain.address import check_syntax
from mailvet.pipeline.cost import normalized_valid, unique_valid_addresses
from mailvet.tabular import detect_layout

pytestmark = pytest.mark.unit

SUITES = Path(__file__).parents[1] / "data" / "syntax"


def reference(cells: list[str]) -> list[str]:
    return [syntax.normalized for syntax in map(check_syntax, cells) if syntax.valid]


def suite_cells() -> list[str]:
    cells: list[str] = []
    for path in sorted(SUITES.glob("*.json")):
        cells += [case["address"].strip() for case in json.loads(path.read_text())["cases"]]
    return cells


def test_the_fast_way_equals_check_syntax_on_the_public_suites() -> None:
    cells = suite_cells()
    assert len(cells) > 500
    assert list(normalized_valid(cells)) == reference(cells)


SPELLINGS = [
    "Ann@Example.COM",
    "ann@example.com",
    "POSTMASTER@example.com",  # lowered by the rules
    "Ann <ann@example.com>",
    '"ann"@example.com',
    '"a b"@example.com',
    "ann@bücher.de",
    "ann@xn--bcher-kva.de",
    "jörg@example.com",
    "ann@[192.0.2.1]",
    "ann@@example.com",
    "@example.com",
    "ann@",
    "ann@example",
    "ann@-bad.com",
    "a" * 65 + "@example.com",
    "a" * 250 + "@example.com",
    "ann.@example.com",
    "ann@gmail,com",
]


def test_the_fast_way_equals_check_syntax_on_awkward_spellings() -> None:
    assert list(normalized_valid(SPELLINGS)) == reference(SPELLINGS)


atoms = st.text(alphabet='abcAB09.-_+@ü"<> []', min_size=0, max_size=12)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(atoms, st.sampled_from(["x.com", "X.Com", "ex-ample.org", "bad_", ""]))))
def test_the_fast_way_equals_check_syntax_on_random_cells(pairs: list[tuple[str, str]]) -> None:
    cells = [f"{local}@{domain}".strip() for local, domain in pairs]
    assert list(normalized_valid(cells)) == reference(cells)


def test_a_file_costs_its_distinct_valid_addresses(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text(
        "name,email\n"
        "Ann,ann@x.com\n"
        "Ann again,ann@X.COM\n"  # the same address
        "Ann padded,  ann@x.com  \n"  # the same cell once stripped
        "Bob,bob@x.com\n"
        "Nobody,\n"
        "Broken,not-an-address\n"
        "Carl,Carl <carl@x.com>\n"
    )
    layout = detect_layout(path, None, "list.csv", None, None, None)

    assert unique_valid_addresses(path, layout) == 3
