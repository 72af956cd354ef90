"""What the documentation page says about each status, reason and job state.

The lists themselves come from domain/verdict.py and domain/job.py (`docs_statuses`,
`docs_job_statuses`): a reason or state added there without a sentence here fails
tests/web/test_shell_public.py, and one removed there disappears from the page.
"""

from __future__ import annotations

import msgspec

from mailvet.domain.job import JobStatus
from mailvet.domain.verdict import STATUS_OF, Reason, Status
from mailvet.web.jobs.labels import status_label

STATUS_TEXT: dict[Status, str] = {
    Status.DELIVERABLE: "The mail server accepted the mailbox.",
    Status.UNDELIVERABLE: (
        "Mail to this address cannot arrive: bad syntax, a domain that takes no mail, or"
        " the mail server said the mailbox does not exist. Needs evidence about the address"
        " itself: a refusal aimed at our probe is never undeliverable."
    ),
    Status.RISKY: "Mail may arrive, but sending to it carries a risk.",
    Status.UNKNOWN: (
        "No answer good enough to decide. These addresses are refunded when your list completes."
    ),
}

REASON_TEXT: dict[Reason, str] = {
    Reason.ACCEPTED: "the mail server accepted the mailbox (RCPT TO answered 250)",
    Reason.INVALID_SYNTAX: "not a valid address (RFC 5321/5322/6531), even after cleaning",
    Reason.NO_DOMAIN: "the domain does not exist in DNS",
    Reason.NO_MX: "the domain has neither mail servers (MX) nor an address to deliver to",
    Reason.NULL_MX: "the domain declares that it accepts no mail (Null MX, RFC 7505)",
    Reason.MAILBOX_NOT_FOUND: "the mail server said this mailbox does not exist",
    Reason.MAILBOX_DISABLED: "the mail server said this mailbox is disabled",
    Reason.REJECTED: "the mail server refused the mailbox with a reason about the address",
    Reason.CATCH_ALL: "the domain accepts every address, real or not: acceptance proves nothing",
    Reason.DISPOSABLE: "a throw-away address from a disposable-email provider",
    Reason.MAILBOX_FULL: "the mailbox exists but is over its quota",
    Reason.SUSPECTED_TYPO: (
        "the domain looks like a typo of a popular provider: see mailvet_suggestion"
    ),
    Reason.TIMEOUT: "the mail server did not answer in time",
    Reason.CONNECTION_FAILED: "no mail server of the domain could be reached",
    Reason.GREYLISTED: "the mail server asked to try again later (greylisting)",
    Reason.SMTP_ERROR: "the mail server answered, but not in a way that decides",
    Reason.NOT_CHECKED: "not checked at the level asked (for example syntax only)",
}

# what each job state means (its label, as the dashboard shows it: web/jobs/labels.py)
JOB_STATUS_TEXT: dict[JobStatus, str] = {
    JobStatus.PENDING_START: "uploaded, waiting to be read",
    JobStatus.FILE_ACCEPTED: "read: its rows and cost are known",
    JobStatus.FILE_QUEUED: "its parts wait for a worker",
    JobStatus.IN_PROGRESS: "addresses are being checked",
    JobStatus.COMPLETED: "the result is ready to download",
    JobStatus.ERROR_FILE: "the file could not be read or has no email column",
    JobStatus.ERROR_INTERNAL: "a step failed; nothing was charged for what was not done",
    JobStatus.ERROR_INSUFFICIENT_CREDITS: (
        "the list costs more credits than the account holds (the shortfall is shown)"
    ),
}

STEPS: tuple[tuple[str, str], ...] = (
    (
        "Syntax",
        "the address is parsed by the rules of RFC 5321, 5322 and 6531 (international"
        " addresses too); a display name (Ann <ann@example.com>) is judged by the address"
        " inside, needless quotes are dropped.",
    ),
    (
        "Lists",
        "disposable providers, role accounts (info@, sales@) and free providers are flagged;"
        " a domain that looks like a typo of a popular provider gets a suggestion.",
    ),
    (
        "DNS",
        "the domain's mail servers (MX) are looked up; a domain without them falls back to"
        " its address (implicit MX); a Null MX means no mail.",
    ),
    (
        "Mailbox",
        "the mail server is asked, without sending anything, whether it takes mail for the"
        " mailbox; an address that cannot exist is asked too, to spot catch-all domains, and"
        " postmaster@ as a control, so that a refusal of our probe is not taken for a"
        " missing mailbox.",
    ),
)


class ReasonDoc(msgspec.Struct, frozen=True):
    name: str
    text: str


class StatusDoc(msgspec.Struct, frozen=True):
    status: str
    text: str
    reasons: list[ReasonDoc]


class JobStatusDoc(msgspec.Struct, frozen=True):
    name: str
    label: str
    text: str


def docs_statuses() -> list[StatusDoc]:
    """Every status, in the enum's order, with every reason that leads to it."""
    return [
        StatusDoc(
            status=status.value,
            text=STATUS_TEXT[status],
            reasons=[
                ReasonDoc(reason.value, REASON_TEXT[reason])
                for reason in Reason
                if STATUS_OF[reason] is status
            ],
        )
        for status in Status
    ]


def docs_job_statuses() -> list[JobStatusDoc]:
    return [
        JobStatusDoc(status.value, status_label(status), JOB_STATUS_TEXT[status])
        for status in JobStatus
    ]
