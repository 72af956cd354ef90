from __future__ import annotations

from itertools import pairwise

import pytest

from mailvet.domain.address import check_syntax
from mailvet.domain.job import IllegalTransition, JobStatus, check_transition
from mailvet.domain.offline import offline_verdict, syntax_verdicts
from mailvet.domain.risk import domain_risk, is_role, suggest_domain

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("domain", "suggestion"),
    [
        ("gmial.com", "gmail.com"),
        ("gmail.con", "gmail.com"),
        ("hotmial.com", "hotmail.com"),
        ("yahooo.com", "yahoo.com"),
        ("outlok.com", "outlook.com"),
        ("gmail.com", ""),
        ("good-mail.com", ""),
        ("mycompany.com", ""),
        ("yahoo.co.uk", ""),
    ],
)
def test_typo_suggestions(domain: str, suggestion: str) -> None:
    assert suggest_domain(domain) == suggestion


def test_lists() -> None:
    assert domain_risk("mailinator.com").disposable
    assert domain_risk("eu.mailinator.com").disposable  # parent domain listed
    assert not domain_risk("gmail.com").disposable
    assert domain_risk("gmail.com").free and domain_risk("yahoo.com").free
    assert not domain_risk("good-mail.com").free


@pytest.mark.parametrize(
    ("local", "role"),
    [
        ("info", True),
        ("Sales", True),
        ("support+eu", True),
        ("noreply", True),
        ("postmaster", True),
        ("alice", False),
        ("informal", False),
        ("information", True),
        ("donotreply", True),
        ("no.reply", True),
    ],
)
def test_roles(local: str, role: bool) -> None:
    assert is_role(local) is role


def test_offline_verdict_fills_flags_and_suggestion() -> None:
    verdict = offline_verdict(check_syntax("Info@GMIAL.com"))
    # a typo of a popular provider is a contact to fix, not a disposable one to drop
    assert verdict.columns()[:4] == ("risky", "suspected_typo", "info@gmial.com", "info@gmail.com")
    assert verdict.role
    assert offline_verdict(check_syntax("no-at-sign")).columns()[:3] == (
        "undeliverable",
        "invalid_syntax",
        "",
    )


def test_job_state_machine() -> None:
    path = [
        JobStatus.PENDING_START,
        JobStatus.FILE_ACCEPTED,
        JobStatus.FILE_QUEUED,
        JobStatus.IN_PROGRESS,
        JobStatus.COMPLETED,
    ]
    for current, new in pairwise(path):
        check_transition(current, new)
    with pytest.raises(IllegalTransition):
        check_transition(JobStatus.PENDING_START, JobStatus.COMPLETED)
    with pytest.raises(IllegalTransition):
        check_transition(JobStatus.COMPLETED, JobStatus.ERROR_INTERNAL)
    check_transition(JobStatus.FILE_QUEUED, JobStatus.ERROR_FILE)


@pytest.mark.parametrize(
    ("cell", "suggestion"),
    [
        ("ann@gmail,com", "ann@gmail.com"),
        ("ann@gmailcom", "ann@gmail.com"),
        ("ann@gmail..com", "ann@gmail.com"),
        ("no-at-sign", ""),
    ],
)
def test_a_typo_that_breaks_syntax_still_gets_its_suggestion(cell: str, suggestion: str) -> None:
    (verdict,) = syntax_verdicts([f" {cell} "])
    assert (verdict.status, verdict.reason, verdict.suggestion) == (
        "undeliverable",
        "invalid_syntax",
        suggestion,
    )
