"""Accounts: the use cases of signing up, confirming, signing in and looking after an account.

The rules are in domain/accounts.py and domain/passwords.py; this module applies them to the
database. Every method takes the caller's unit of work (`session`, an AsyncSession inside
`session.begin()`) and does not commit: a sign-up adds the account, its credit grant
(services.credits) and its mail (services.outbox) in one transaction.

What the callers can rely on:

* no enumeration: `signup`, `resend_code` and `request_password_reset` answer the same
  whether the address has an account or not; `login` says only "invalid" for an unknown
  address or a wrong password, and verifies a dummy hash for an unknown one so the time
  taken tells nothing; an address that has an account gets an "account_exists" mail instead;
* single use under concurrency: a code, a recovery code, a TOTP step and a reset token are
  each consumed by one conditional UPDATE/DELETE whose row count decides (two replicas
  racing with the same code: one wins);
* throttling (services.throttle, counters shared by all replicas): 5 failed sign-ins per
  address per 15 minutes (the count is kept per address, known or not), 5 failed second
  factors per account per 15 minutes, 3 reset mails and 3 "account exists" mails per
  address per hour (silently: the answer stays the same); the per-IP limits of the forms
  are the web's (web/auth/common.py);
* secrets at rest: argon2id password hashes (hashed off the event loop), keyed SHA-256
  digests of codes and tokens (HMAC, so a stolen table gives no 6-digit code by brute force),
  the TOTP secret as a Fernet token; both keys derived from `settings.web.secret_key` with
  HKDF (changing the key voids pending codes, resets and TOTP secrets).

Web code: one `AccountService(...)` per process, built by `web.auth.ports.build_auth_ports`
from the web context (its hasher, secret key and clock), then `await service.signup(session,
...)` etc. in the controllers.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import msgspec
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mailvet.adapters.db.account_models import (
    AccountRow,
    EmailCodeRow,
    PasswordResetRow,
    RecoveryCodeRow,
)
from mailvet.adapters.db.database import rowcount, write_intent
from mailvet.adapters.db.models import JobRow
from mailvet.clock import utc_now
from mailvet.domain import accounts as rules
from mailvet.domain.accounts import Account, CodeOutcome, CodeState, ResendVerdict, Role
from mailvet.domain.credits import EntryKind
from mailvet.domain.mail import OutgoingMail
from mailvet.domain.passwords import MAX_BYTES, normalize_password, password_problem
from mailvet.logs import logger
from mailvet.pipeline import object_keys
from mailvet.services import api_keys, outbox, sessions
from mailvet.services import credits as ledger
from mailvet.services.throttle import Limit

if TYPE_CHECKING:
    from argon2 import PasswordHasher
    from cryptography.fernet import Fernet

    from mailvet.domain.identity import GoogleIdentity
    from mailvet.domain.ports import ObjectStorage

CONFIRM = "confirm"  # purpose of the sign-up code (email_codes.purpose)


LOGIN_FAILURES = Limit("login-fail", 5, 15 * 60)  # per address (known or not), failures only
SECOND_FACTOR_FAILURES = Limit("2fa-fail", 5, 15 * 60)  # per account
EXISTS_MAILS = Limit("signup-exists", 3, 3600)  # "account exists" mails per address
RESET_MAILS = Limit("reset-mail", 3, 3600)  # reset links per address
CLI_ACTOR = "cli"


# --- errors and results -----------------------------------------------------------------------


# a job row pending_start younger than this is a Start under way (its file goes to intake
# next): it blocks the account's deletion; an older one never got there
STARTING_FOR = datetime.timedelta(hours=1)


class AccountError(Exception):
    """A request the account cannot carry out; `message` is for the user."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field  # the form field it is about ("" for the whole form)


class InvalidInput(AccountError):
    pass


class AccountExists(AccountError):
    """Only `create_account` (the CLI, admins) says this; sign-up never does."""


class NoSuchAccount(AccountError):
    pass


class InvalidToken(AccountError):
    """A reset link that is unknown, used or expired."""


class AccountBusy(AccountError):
    """The account cannot be deleted now: one of its lists is being validated."""


class LoginOutcome(msgspec.Struct, frozen=True):
    """`status`: "ok" (sign in now), "second_factor" (ask for TOTP or a recovery code, keep
    `account.id` as pending), "invalid" (unknown address or wrong password, the same),
    "disabled" (right password, account disabled), "throttled" (429, `retry_after`)."""

    status: str
    account: Account | None = None
    retry_after: int = 0


class ConfirmOutcome(msgspec.Struct, frozen=True):
    outcome: CodeOutcome
    attempts_left: int = 0
    account_id: str | None = None  # set when accepted


class PasswordCheck(msgspec.Struct, frozen=True):
    """`ok`: the password is the account's; `retry_after` > 0: refused unchecked, the
    address's sign-in failures are spent for that many seconds."""

    ok: bool
    retry_after: int = 0


class PasswordChange(msgspec.Struct, frozen=True):
    """`status`: "changed" (`sessions_ended` other sessions ended), "wrong_password" (the
    current password is not right; counted), "throttled" (`retry_after` seconds)."""

    status: str
    sessions_ended: int = 0
    retry_after: int = 0


class SecondFactorOutcome(msgspec.Struct, frozen=True):
    """`ok`: the code is right and `account` (enabled, TOTP on) signs in now."""

    ok: bool
    used_recovery_code: bool = False
    recovery_codes_left: int = 0
    retry_after: int = 0  # > 0: throttled
    account: Account | None = None  # when ok


class GoogleLink(msgspec.Struct, frozen=True):
    """What "Connect Google" did (`AccountService.link_google`): `status` "linked",
    "already", "taken", "other_identity", "disabled" or "stale" (a new identity, and the
    sign-in is not recent); `account` when linked or already."""

    status: str
    account: Account | None = None


class TotpSetup(msgspec.Struct, frozen=True):
    """What the enable page shows: the secret as text for manual entry, the otpauth URI for
    the QR code."""

    secret: str
    uri: str


class GoogleOutcome(msgspec.Struct, frozen=True):
    """`status`: "ok", "second_factor" (TOTP is on), "disabled", "email_not_verified" (no
    account has this Google identity and the address is not verified: nothing created or
    linked), "invalid_email" (not an address an account can have). `created`/`linked` say
    what happened."""

    status: str
    account: Account | None = None
    created: bool = False
    linked: bool = False


# --- keys -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountKeys:
    """Keys derived from the application's secret key: one for the digests of codes and
    tokens, one (Fernet) for the TOTP secrets."""

    digest_key: bytes
    fernet: Fernet

    @classmethod
    def from_secret(cls, secret_key: str) -> AccountKeys:
        if not secret_key:
            raise ValueError("the secret key is empty")
        from cryptography.fernet import Fernet
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        def derive(info: bytes) -> bytes:
            kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info)
            return kdf.derive(secret_key.encode("utf-8", "surrogatepass"))

        fernet = Fernet(base64.urlsafe_b64encode(derive(b"mailvet accounts: totp secrets")))
        return cls(digest_key=derive(b"mailvet accounts: digests"), fernet=fernet)

    def digest(self, purpose: str, value: str) -> str:
        message = f"{purpose}\x00{value}".encode()
        return hmac.new(self.digest_key, message, hashlib.sha256).hexdigest()

    def encrypt(self, text: str) -> str:
        return self.fernet.encrypt(text.encode()).decode("ascii")

    def decrypt(self, token: str) -> str:
        return self.fernet.decrypt(token.encode("ascii")).decode()


# --- plain queries (also for other areas) -------------------------------------------------------


def to_account(row: AccountRow) -> Account:
    return Account(
        id=row.id,
        email=row.email,
        first_name=row.first_name,
        last_name=row.last_name,
        newsletter=row.newsletter,
        role=Role(row.role),
        confirmed=row.confirmed_at is not None,
        disabled=row.disabled,
        totp_enabled=row.totp_enabled,
        google_sub=row.google_sub,
        google_picture=row.google_picture,
        avatar_key=row.avatar_key,
        has_password=row.password_hash is not None,
        created_at=row.created_at,
    )


async def get_account(session: AsyncSession, account_id: str) -> Account | None:
    row = await session.get(AccountRow, account_id)
    return None if row is None else to_account(row)


async def find_account(session: AsyncSession, email: str) -> Account | None:
    """The account of an address as typed (normalized here); None also for a malformed one."""
    row = await _row_by_email(session, email)
    return None if row is None else to_account(row)


async def search_accounts(
    session: AsyncSession, query: str = "", *, limit: int = 50, offset: int = 0
) -> list[Account]:
    """Accounts whose address or name contains `query` (case-insensitive), newest first."""
    statement = select(AccountRow).order_by(AccountRow.created_at.desc(), AccountRow.id)
    text = query.strip().casefold()[:200]
    if text:
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        statement = statement.where(
            or_(
                AccountRow.email.like(pattern, escape="\\"),
                func.lower(AccountRow.first_name).like(pattern, escape="\\"),
                func.lower(AccountRow.last_name).like(pattern, escape="\\"),
            )
        )
    rows = await session.execute(statement.limit(max(1, min(limit, 500))).offset(max(0, offset)))
    return [to_account(row) for row in rows.scalars()]


async def create_account(
    session: AsyncSession,
    *,
    email: str,
    password: str | None,
    first_name: str = "",
    last_name: str = "",
    newsletter: bool = False,
    admin: bool = False,
    confirmed: bool = False,
    credits: int | None = None,
    free_credits: int = 0,
    hasher: PasswordHasher,
    now: datetime.datetime,
    google_sub: str | None = None,
    google_picture: str | None = None,
) -> Account:
    """Add an account. `credits` None: the sign-up grant of `free_credits` (through the
    ledger, once per account); a number: the account starts with exactly that many (the CLI,
    no sign-up grant). `password` None: Google only. Raises InvalidInput, AccountExists."""
    address = _email(email)
    password_hash = None
    if password is not None:
        _check_password(password, address)
        password_hash = await _hash(hasher, password)
    if credits is not None and credits < 0:
        raise InvalidInput("An account cannot start with negative credits.", field="credits")
    await write_intent(session)
    if await _row_by_email(session, address) is not None:
        raise AccountExists("An account with this address exists.", field="email")
    row = AccountRow(
        id=uuid.uuid4().hex,
        email=address,
        password_hash=password_hash,
        first_name=rules.clean_name(first_name),
        last_name=rules.clean_name(last_name),
        newsletter=newsletter,
        role=(Role.ADMIN if admin else Role.USER).value,
        confirmed_at=now if confirmed else None,
        disabled=False,
        google_sub=google_sub,
        google_picture=google_picture,
        avatar_key=None,
        totp_secret=None,
        totp_enabled=False,
        totp_last_step=None,
        password_changed_at=now if password_hash else None,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    if credits is None:
        if free_credits > 0:
            await ledger.grant(
                session,
                row.id,
                free_credits,
                kind=EntryKind.SIGNUP_GRANT,
                now=now,
                reason="sign-up grant",
                key=f"signup:{row.id}",
            )
    elif credits > 0:
        await ledger.adjust(
            session, row.id, credits, actor=CLI_ACTOR, reason="starting credits", now=now
        )
    logger(__name__).info("account_created", account_id=row.id, admin=admin)
    return to_account(row)


# --- the service ----------------------------------------------------------------------------------


class AccountService:
    """The account use cases with what they need: the password hasher (argon2id), the keys,
    the public URL (links in mail), the sign-up grant, the object storage (account deletion)
    and the clock."""

    def __init__(
        self,
        *,
        hasher: PasswordHasher,
        keys: AccountKeys,
        public_url: str,
        free_credits: int,
        storage: ObjectStorage | None = None,
        clock: Callable[[], datetime.datetime] = utc_now,
    ) -> None:
        self.hasher = hasher
        self.keys = keys
        self.public_url = public_url.rstrip("/")
        self.free_credits = free_credits
        self.storage = storage
        self.clock = clock
        self._dummy_hash: str | None = None

    # --- sign-up and the e-mailed code --------------------------------------------------------

    async def signup(
        self,
        session: AsyncSession,
        *,
        email: str,
        password: str,
        first_name: str = "",
        last_name: str = "",
        newsletter: bool = False,
    ) -> str:
        """Sign up; returns the normalized address whatever happened (the confirm page asks
        for the code sent there). New address: the account, its sign-up grant and a mail
        with the code. Known address: nothing changes, its owner gets "account_exists".
        Raises InvalidInput for a malformed address or an unacceptable password (judged
        before the address is looked up, so it tells nothing about existence)."""
        now = self.clock()
        address = _email(email)
        _check_password(password, address)
        await write_intent(session)
        if await _row_by_email(session, address) is not None:
            await self._hash(password)  # the same work as a new account
            if (await EXISTS_MAILS.hit(session, self._subject(address), now)).allowed:
                await outbox.enqueue(session, OutgoingMail(address, "account_exists", {}), now=now)
            return address
        account = await create_account(
            session,
            email=address,
            password=password,
            first_name=first_name,
            last_name=last_name,
            newsletter=newsletter,
            free_credits=self.free_credits,
            hasher=self.hasher,
            now=now,
        )
        await self._send_code(session, account.id, address, sends=1, now=now)
        return address

    async def confirm(self, session: AsyncSession, *, email: str, code: str) -> ConfirmOutcome:
        """Check the sign-up code typed for `email`. Unknown address, confirmed account or no
        code: WRONG, as for a wrong code (nothing to tell apart)."""
        now = self.clock()
        await write_intent(session)
        row = await _row_by_email(session, email)
        if row is None or row.confirmed_at is not None:
            return ConfirmOutcome(CodeOutcome.WRONG, rules.CODE_MAX_WRONG - 1)
        # Count the entry first, atomically (the row stays locked until commit on
        # PostgreSQL): entries racing in parallel are judged one after the other, so a
        # flood of guesses gets no more than CODE_MAX_WRONG of them.
        where = (EmailCodeRow.account_id == row.id, EmailCodeRow.purpose == CONFIRM)
        counted = (
            await session.execute(
                update(EmailCodeRow)
                .where(*where)
                .values(attempts=EmailCodeRow.attempts + 1)
                .returning(
                    EmailCodeRow.code_hash,
                    EmailCodeRow.expires_at,
                    EmailCodeRow.attempts,
                    EmailCodeRow.sends,
                    EmailCodeRow.last_sent_at,
                )
                .execution_options(synchronize_session=False)
            )
        ).one_or_none()
        if counted is None:
            return ConfirmOutcome(CodeOutcome.WRONG, rules.CODE_MAX_WRONG - 1)
        stored_hash, expires_at, attempts, sends, last_sent_at = counted
        state = CodeState(
            expires_at=expires_at,
            attempts=attempts - 1,  # before this entry
            sends=sends,
            last_sent_at=last_sent_at,
        )
        typed = rules.clean_code(code)
        digest = self._code_digest(row.id, typed or "")
        matches = typed is not None and hmac.compare_digest(digest, stored_hash)
        verdict = rules.judge_code(state, matches=matches, now=now)
        if verdict.outcome is CodeOutcome.ACCEPTED:
            await session.execute(
                delete(EmailCodeRow).where(*where).execution_options(synchronize_session=False)
            )
            row.confirmed_at = now
            await session.flush()
            logger(__name__).info("account_confirmed", account_id=row.id)
            return ConfirmOutcome(CodeOutcome.ACCEPTED, verdict.attempts_left, row.id)
        return ConfirmOutcome(verdict.outcome, verdict.attempts_left)

    async def resend_code(self, session: AsyncSession, *, email: str) -> ResendVerdict:
        """Mail a new code (the old one stops working) when the rules allow it. An unknown or
        confirmed address is answered "allowed" and gets nothing."""
        now = self.clock()
        await write_intent(session)
        row = await _row_by_email(session, email)
        if row is None or row.confirmed_at is not None:
            return ResendVerdict(True)
        code_row = await session.get(EmailCodeRow, (row.id, CONFIRM), populate_existing=True)
        verdict = rules.judge_resend(None if code_row is None else _code_state(code_row), now=now)
        if verdict.allowed:
            await self._send_code(session, row.id, row.email, sends=verdict.sends, now=now)
        return verdict

    async def _send_code(
        self,
        session: AsyncSession,
        account_id: str,
        address: str,
        *,
        sends: int,
        now: datetime.datetime,
    ) -> None:
        code = rules.new_code()
        values = {
            "code_hash": self._code_digest(account_id, code),
            "expires_at": now + rules.CODE_LIFETIME,
            "attempts": 0,
            "sends": sends,
            "last_sent_at": now,
        }
        code_row = await session.get(EmailCodeRow, (account_id, CONFIRM))
        if code_row is None:
            session.add(EmailCodeRow(account_id=account_id, purpose=CONFIRM, **values))
        else:
            for name, value in values.items():
                setattr(code_row, name, value)
        await session.flush()
        await outbox.enqueue(
            session, OutgoingMail(address, "confirm_code", {"code": code}), now=now
        )

    def _code_digest(self, account_id: str, code: str) -> str:
        return self.keys.digest(f"code:{CONFIRM}", f"{account_id}:{code}")

    # --- signing in ---------------------------------------------------------------------------

    async def login(self, session: AsyncSession, *, email: str, password: str) -> LoginOutcome:
        """Check an address and password. The address's limit counts every attempt before
        the password is checked (an atomic increment: racing requests cannot all pass under
        the limit); a success then clears the count, so only failures add up. The per-IP
        limit of the form is the web's (web.auth.common.LOGIN_PER_IP)."""
        now = self.clock()
        await write_intent(session)
        subject = self._subject(email.strip().casefold()[: rules.MAX_EMAIL_LENGTH + 1])
        ahead = await LOGIN_FAILURES.hit(session, subject, now)
        if not ahead.allowed:
            return LoginOutcome("throttled", retry_after=ahead.retry_after)
        row = await _row_by_email(session, email)
        if row is None or row.password_hash is None:
            await self._verify(await self._dummy(), password)  # the same time as a real check
            ok = False
        else:
            ok = await self._verify(row.password_hash, password)
        if not ok or row is None:
            return LoginOutcome("invalid")
        await LOGIN_FAILURES.reset(session, subject)
        if row.disabled:
            return LoginOutcome("disabled")
        if self.hasher.check_needs_rehash(row.password_hash or ""):
            row.password_hash = await self._hash(password)
            await session.flush()
        account = to_account(row)
        if row.totp_enabled:
            return LoginOutcome("second_factor", account)
        logger(__name__).info("signed_in", account_id=row.id)
        return LoginOutcome("ok", account)

    async def check_password(
        self, session: AsyncSession, account_id: str, password: str
    ) -> PasswordCheck:
        """Reauthentication: is this the account's password? A wrong one counts as a failed
        sign-in of the account's address (LOGIN_FAILURES: 5 per 15 minutes, shared with
        /login), so a taken-over session cannot guess; once over the limit even the right
        one is refused (`retry_after` > 0). The count is written in `session`: the caller
        commits it whatever the answer (never raise after a wrong password)."""
        now = self.clock()
        await write_intent(session)
        row = await session.get(AccountRow, account_id)
        if row is None or row.password_hash is None:
            return PasswordCheck(False)
        subject = self._subject(row.email)
        ahead = await LOGIN_FAILURES.hit(session, subject, now)
        if not ahead.allowed:
            return PasswordCheck(False, retry_after=ahead.retry_after)
        if await self._verify(row.password_hash, password):
            await LOGIN_FAILURES.reset(session, subject)
            return PasswordCheck(True)
        return PasswordCheck(False)

    async def verify_second_factor(
        self, session: AsyncSession, *, account_id: str, code: str
    ) -> SecondFactorOutcome:
        """A TOTP code (not a replay: its step must be newer than the last one used) or an
        unused recovery code (used up here)."""
        now = self.clock()
        await write_intent(session)
        ahead = await SECOND_FACTOR_FAILURES.hit(session, account_id, now)  # cleared on success
        if not ahead.allowed:
            return SecondFactorOutcome(False, retry_after=ahead.retry_after)
        row = await session.get(AccountRow, account_id, populate_existing=True)
        if row is None or row.disabled or not row.totp_enabled or row.totp_secret is None:
            return SecondFactorOutcome(False)
        proof = await self._prove_second_factor(session, row, code, now)
        if proof is None:
            return SecondFactorOutcome(False)
        left = await self.recovery_codes_left(session, account_id)
        if proof == "recovery":
            logger(__name__).info("recovery_code_used", account_id=account_id, left=left)
        return SecondFactorOutcome(
            True,
            used_recovery_code=proof == "recovery",
            recovery_codes_left=left,
            account=to_account(row),
        )

    async def _prove_second_factor(
        self, session: AsyncSession, row: AccountRow, code: str, now: datetime.datetime
    ) -> Literal["totp", "recovery"] | None:
        """Take `code` as a TOTP step or else as an unused recovery code; which one it was
        (None: neither). A success clears the account's SECOND_FACTOR_FAILURES count, which
        the caller hit before."""
        if await self._take_totp_step(session, row, code, now):
            proof: Literal["totp", "recovery"] = "totp"
        elif await self._take_recovery_code(session, row.id, code):
            proof = "recovery"
        else:
            return None
        await SECOND_FACTOR_FAILURES.reset(session, row.id)
        return proof

    async def _take_totp_step(
        self, session: AsyncSession, row: AccountRow, code: str, now: datetime.datetime
    ) -> bool:
        if row.totp_secret is None:
            return False
        step = rules.totp_step(self.keys.decrypt(row.totp_secret), code, now=now)
        if step is None or rules.replayed(step, row.totp_last_step):
            return False
        taken = await session.execute(
            update(AccountRow)
            .where(AccountRow.id == row.id)
            .where(or_(AccountRow.totp_last_step.is_(None), AccountRow.totp_last_step < step))
            .values(totp_last_step=step)
            .execution_options(synchronize_session=False)
        )
        if rowcount(taken) != 1:
            return False  # the same code (or a newer one) was taken concurrently
        row.totp_last_step = step
        return True

    async def _take_recovery_code(self, session: AsyncSession, account_id: str, code: str) -> bool:
        typed = rules.normalize_recovery_code(code)
        if typed is None:
            return False
        taken = await session.execute(
            delete(RecoveryCodeRow)
            .where(RecoveryCodeRow.account_id == account_id)
            .where(RecoveryCodeRow.code_hash == self._recovery_digest(account_id, typed))
            .execution_options(synchronize_session=False)
        )
        return rowcount(taken) == 1

    def _recovery_digest(self, account_id: str, normalized: str) -> str:
        return self.keys.digest("recovery", f"{account_id}:{normalized}")

    # --- TOTP ---------------------------------------------------------------------------------

    async def start_totp(self, session: AsyncSession, account_id: str) -> TotpSetup:
        """A new secret, kept encrypted and not yet in force until `enable_totp` confirms a
        code of it. Raises AccountError when TOTP is already on."""
        row = await self._row(session, account_id)
        if row.totp_enabled:
            raise AccountError("Two-factor authentication is already on.")
        secret = rules.new_totp_secret()
        row.totp_secret = self.keys.encrypt(secret)
        row.totp_last_step = None
        await session.flush()
        return TotpSetup(secret=secret, uri=rules.totp_uri(secret, row.email))

    async def pending_totp(self, session: AsyncSession, account_id: str) -> TotpSetup | None:
        """The setup `start_totp` made, while no code of it has turned TOTP on (the enable
        page shows the same QR code again after a wrong code); None: nothing pending."""
        row = await session.get(AccountRow, account_id)
        if row is None or row.totp_enabled or row.totp_secret is None:
            return None
        secret = self.keys.decrypt(row.totp_secret)
        return TotpSetup(secret=secret, uri=rules.totp_uri(secret, row.email))

    async def enable_totp(
        self, session: AsyncSession, account_id: str, code: str
    ) -> list[str] | None:
        """Turn TOTP on when `code` is a current code of the pending secret; the 10 recovery
        codes to show once (None: wrong code, nothing changed)."""
        now = self.clock()
        await write_intent(session)
        row = await self._row(session, account_id)
        if row.totp_enabled or row.totp_secret is None:
            return None
        if not await self._take_totp_step(session, row, code, now):
            return None
        row.totp_enabled = True
        await session.flush()
        codes = await self.regenerate_recovery_codes(session, account_id)
        await outbox.enqueue(session, OutgoingMail(row.email, "two_factor_enabled", {}), now=now)
        logger(__name__).info("two_factor_enabled", account_id=account_id)
        return codes

    async def disable_totp(self, session: AsyncSession, account_id: str, code: str) -> bool:
        """Turn TOTP off; needs a current code (or an unused recovery code). Wrong codes
        count with the sign-in's second factors (5 per 15 minutes), so a session that was
        taken over cannot guess its way to switching 2FA off."""
        now = self.clock()
        await write_intent(session)
        row = await self._row(session, account_id)
        if not row.totp_enabled:
            return False
        if not (await SECOND_FACTOR_FAILURES.hit(session, account_id, now)).allowed:
            return False
        if await self._prove_second_factor(session, row, code, now) is None:
            return False
        await self._drop_second_factor(session, row)
        await session.flush()
        await outbox.enqueue(session, OutgoingMail(row.email, "two_factor_disabled", {}), now=now)
        logger(__name__).info("two_factor_disabled", account_id=account_id)
        return True

    async def _drop_second_factor(self, session: AsyncSession, row: AccountRow) -> None:
        """TOTP off, its secret and the recovery codes gone."""
        row.totp_enabled, row.totp_secret, row.totp_last_step = False, None, None
        await session.execute(delete(RecoveryCodeRow).where(RecoveryCodeRow.account_id == row.id))

    async def regenerate_recovery_codes(self, session: AsyncSession, account_id: str) -> list[str]:
        """Ten new recovery codes (the old ones stop working), shown once."""
        codes = rules.new_recovery_codes()
        await session.execute(
            delete(RecoveryCodeRow).where(RecoveryCodeRow.account_id == account_id)
        )
        for code in codes:
            digest = self._recovery_digest(account_id, rules.normalize_recovery_code(code) or "")
            session.add(RecoveryCodeRow(account_id=account_id, code_hash=digest))
        await session.flush()
        return codes

    async def recovery_codes_left(self, session: AsyncSession, account_id: str) -> int:
        query = (
            select(func.count())
            .select_from(RecoveryCodeRow)
            .where(RecoveryCodeRow.account_id == account_id)
        )
        return int((await session.execute(query)).scalar_one())

    # --- passwords ----------------------------------------------------------------------------

    async def change_password(
        self,
        session: AsyncSession,
        *,
        account_id: str,
        current_password: str | None,
        new_password: str,
        keep_session_hash: str | None = None,
    ) -> PasswordChange:
        """Set a new password (the current one is asked for when there is one; a Google-only
        account sets its first). Ends the account's other sessions (all but
        `keep_session_hash`, the caller's) and mails a notice.

        A wrong current password is an answer ("wrong_password", or "throttled" once the
        sign-in failures of the address are spent), not an exception: its count is in
        `session`, which the caller commits (a raise would roll the count back and let a
        stolen session guess without end). Raises InvalidInput for the new password only."""
        now = self.clock()
        await write_intent(session)
        row = await self._row(session, account_id)
        if row.password_hash is not None:
            check = await self.check_password(session, account_id, current_password or "")
            if not check.ok:
                status = "throttled" if check.retry_after else "wrong_password"
                return PasswordChange(status, retry_after=check.retry_after)
        ended = await self._set_password(
            session, row, new_password, now=now, keep_session_hash=keep_session_hash
        )
        logger(__name__).info("password_changed", account_id=account_id, sessions_ended=ended)
        return PasswordChange("changed", sessions_ended=ended)

    async def request_password_reset(self, session: AsyncSession, *, email: str) -> None:
        """Mail a reset link if the address has an enabled account; the same (nothing) for the
        caller either way. At most 3 links per address per hour."""
        now = self.clock()
        await write_intent(session)
        row = await _row_by_email(session, email)
        if row is None or row.disabled:
            return
        if not (await RESET_MAILS.hit(session, self._subject(row.email), now)).allowed:
            return
        token = secrets.token_urlsafe(32)
        session.add(
            PasswordResetRow(
                token_hash=self.keys.digest("reset", token),
                account_id=row.id,
                created_at=now,
                expires_at=now + rules.RESET_LIFETIME,
                used_at=None,
            )
        )
        await session.flush()
        link = f"{self.public_url}/reset-password?token={token}"
        await outbox.enqueue(
            session, OutgoingMail(row.email, "password_reset", {"link": link}), now=now
        )
        logger(__name__).info("password_reset_sent", account_id=row.id)

    async def reset_token_usable(self, session: AsyncSession, token: str) -> bool:
        """Does the link still work? (The reset page shows its form only then.)"""
        reset = await self._reset_row(session, token)
        return reset is not None and rules.reset_usable(
            expires_at=reset.expires_at, used_at=reset.used_at, now=self.clock()
        )

    async def reset_password(self, session: AsyncSession, *, token: str, new_password: str) -> str:
        """Set the password through a reset link: the link is used up, every other link of
        the account too, every session of the account ends, a notice is mailed. Returns the
        account id. Raises InvalidToken (unknown, used, expired) or InvalidInput (the
        password; the link stays usable)."""
        now = self.clock()
        await write_intent(session)
        reset = await self._reset_row(session, token)
        if reset is None or not rules.reset_usable(
            expires_at=reset.expires_at, used_at=reset.used_at, now=now
        ):
            raise InvalidToken("This link has expired or was used. Ask for a new one.")
        row = await self._row(session, reset.account_id)
        _check_password(new_password, row.email)
        taken = await session.execute(
            update(PasswordResetRow)
            .where(PasswordResetRow.token_hash == reset.token_hash)
            .where(PasswordResetRow.used_at.is_(None))
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        if rowcount(taken) != 1:
            raise InvalidToken("This link has expired or was used. Ask for a new one.")
        await session.execute(
            update(PasswordResetRow)
            .where(PasswordResetRow.account_id == row.id, PasswordResetRow.used_at.is_(None))
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        await LOGIN_FAILURES.reset(session, self._subject(row.email))
        ended = await self._set_password(session, row, new_password, now=now)
        logger(__name__).info("password_reset", account_id=row.id, sessions_ended=ended)
        return row.id

    async def _set_password(
        self,
        session: AsyncSession,
        row: AccountRow,
        new_password: str,
        *,
        now: datetime.datetime,
        keep_session_hash: str | None = None,
    ) -> int:
        """The new password in force: checked, hashed, its time set; every session of the
        account ends but `keep_session_hash`'s, a notice is mailed; returns how many ended.
        Raises InvalidInput for the password."""
        _check_password(new_password, row.email)
        row.password_hash = await self._hash(new_password)
        row.password_changed_at = now
        await session.flush()
        ended = await sessions.end_all_sessions(
            session, row.id, except_token_hash=keep_session_hash
        )
        await outbox.enqueue(session, OutgoingMail(row.email, "password_changed", {}), now=now)
        return ended

    async def _reset_row(self, session: AsyncSession, token: str) -> PasswordResetRow | None:
        if not token or len(token) > 200:
            return None
        return await session.get(
            PasswordResetRow, self.keys.digest("reset", token), populate_existing=True
        )

    # --- the account page and admins -------------------------------------------------------------

    async def update_profile(
        self,
        session: AsyncSession,
        account_id: str,
        *,
        first_name: str,
        last_name: str,
        newsletter: bool,
    ) -> Account:
        row = await self._row(session, account_id)
        row.first_name = rules.clean_name(first_name)
        row.last_name = rules.clean_name(last_name)
        row.newsletter = newsletter
        await session.flush()
        return to_account(row)

    async def set_avatar_key(
        self, session: AsyncSession, account_id: str, key: str | None
    ) -> str | None:
        """Record the avatar's storage key (None: no avatar); returns the previous key (the
        caller deletes that object)."""
        row = await self._row(session, account_id)
        previous, row.avatar_key = row.avatar_key, key
        await session.flush()
        return previous

    async def sign_out_everywhere(self, session: AsyncSession, account_id: str) -> int:
        """ "Sign out everywhere": every session of the account ends (the caller's too) and
        a notice is mailed; returns how many ended."""
        row = await self._row(session, account_id)
        ended = await sessions.end_all_sessions(session, account_id)
        await outbox.enqueue(
            session, OutgoingMail(row.email, "sessions_ended", {}), now=self.clock()
        )
        logger(__name__).info("signed_out_everywhere", account_id=account_id, sessions=ended)
        return ended

    async def set_disabled(self, session: AsyncSession, account_id: str, disabled: bool) -> None:
        """An administrator disables (its sessions end) or enables an account."""
        row = await self._row(session, account_id)
        row.disabled = disabled
        await session.flush()
        if disabled:
            await sessions.end_all_sessions(session, account_id)
        logger(__name__).info(
            "account_disabled" if disabled else "account_enabled", account_id=account_id
        )

    async def delete_account(self, session: AsyncSession, account_id: str) -> None:
        """Delete an account: its files (uploads, results, avatar), sessions and API keys go,
        its codes and reset links with the row; its job rows stay, without their file names
        (counts and dates remain for the operator); ledger entries stay (no personal data in
        them).

        The files are deleted first, before the caller commits: a failed commit leaves an
        account without its files, never files without an account.

        Refused (AccountBusy, nothing deleted) while a job of the account is running or
        being started (pending_start for less than STARTING_FOR): the pipeline would write
        its result after the files went, under a row the retention purge skips; and while
        its Stripe subscription would renew (domain.billing.renews): Stripe would go on
        charging a customer who has no account left to use."""
        from mailvet.domain.job import ACTIVE_STATUSES, JobStatus
        from mailvet.services.jobs import forget_files

        row = await self._row(session, account_id)
        running = select(JobRow.id).where(
            JobRow.owner == account_id,
            or_(
                JobRow.status.in_([status.value for status in ACTIVE_STATUSES]),
                (JobRow.status == JobStatus.PENDING_START.value)
                & (JobRow.created_at > self.clock() - STARTING_FOR),
            ),
        )
        if (await session.execute(running.limit(1))).first() is not None:
            raise AccountBusy(
                "A list of yours is still being validated: delete the account once it has"
                " finished (its page shows the progress)."
            )
        if await _renewing_plan(session, account_id):
            raise AccountBusy(
                "Your plan renews through Stripe: cancel it first (Billing, Manage your plan),"
                " then delete the account; nothing more will be charged."
            )
        jobs = (
            (await session.execute(select(JobRow.id).where(JobRow.owner == account_id)))
            .scalars()
            .all()
        )
        if self.storage is not None:
            for job_id in jobs:
                for prefix in object_keys.job_prefixes(job_id):
                    await self.storage.delete_prefix(prefix)
            if row.avatar_key:
                await self.storage.delete_prefix(row.avatar_key)
        await forget_files(session, JobRow.owner == account_id)
        await sessions.end_all_sessions(session, account_id)
        # its API keys too (also ON DELETE CASCADE: deleted here, not left to the pragma)
        await api_keys.delete_account_keys(session, account_id)
        await session.delete(row)
        await session.flush()
        logger(__name__).info("account_deleted", account_id=account_id, jobs=len(jobs))

    # --- Google ---------------------------------------------------------------------------------

    async def sign_in_with_google(
        self, session: AsyncSession, identity: GoogleIdentity
    ) -> GoogleOutcome:
        """Sign in with what `OidcClient.complete` returned (a validated ID token's claims,
        passed through as Google gave them). The account with this Google
        identity; else, only when Google verified the address, the account of that address
        (linked now) or a new one (confirmed, with the sign-up grant).

        Linking to an account that was never confirmed drops its password and TOTP and ends
        its sessions: whoever signed up with someone else's address cannot keep a way in
        once the owner of the mailbox arrives."""
        now = self.clock()
        await write_intent(session)
        sub = identity.sub.strip()
        if not sub or len(sub) > 255:
            return GoogleOutcome("email_not_verified")
        picture = _google_picture(identity.picture)
        found = (
            await session.execute(select(AccountRow).where(AccountRow.google_sub == sub))
        ).scalar_one_or_none()
        if found is not None:
            if picture:
                found.google_picture = picture
            return self._google_outcome(found)
        if not identity.email_verified:
            return GoogleOutcome("email_not_verified")
        try:
            address = rules.normalize_email(identity.email)
        except rules.InvalidEmail:
            return GoogleOutcome("invalid_email")
        row = await _row_by_email(session, address)
        if row is None:
            account = await create_account(
                session,
                email=address,
                password=None,
                first_name=identity.given_name,
                last_name=identity.family_name,
                confirmed=True,
                free_credits=self.free_credits,
                hasher=self.hasher,
                now=now,
                google_sub=sub,
                google_picture=picture,
            )
            return GoogleOutcome("ok", account, created=True)
        if row.google_sub is not None:  # the address's account belongs to another identity
            return GoogleOutcome("email_not_verified")
        if row.confirmed_at is None:
            row.password_hash = None
            await self._drop_second_factor(session, row)
            await sessions.end_all_sessions(session, row.id)
            row.confirmed_at = now
        row.google_sub = sub
        row.google_picture = picture
        await session.flush()
        logger(__name__).info("google_linked", account_id=row.id)
        outcome = self._google_outcome(row)
        return GoogleOutcome(outcome.status, outcome.account, linked=True)

    async def link_google(
        self, session: AsyncSession, account_id: str, identity: GoogleIdentity, *, recent: bool
    ) -> GoogleLink:
        """ "Connect Google" from a signed-in account: link the checked identity to THAT
        account, never sign in as (or create) another. "linked"; "already" (this identity
        is the account's own: a fresh Google sign-in, the re-authentication of an account
        without a password); "taken" (the identity is another account's: nothing changes);
        "other_identity" (the account has another Google identity: disconnect it first);
        "disabled"; "stale": connecting a new identity is a sensitive change (a way in from
        then on), so it needs a `recent` sign-in (the last 10 minutes), as the password
        pages do."""
        await write_intent(session)
        sub = identity.sub.strip()
        row = await self._row(session, account_id)
        if not recent and row.google_sub != sub:
            return GoogleLink("stale")
        if row.disabled:
            return GoogleLink("disabled")
        if not sub or len(sub) > 255:
            return GoogleLink("taken")
        if row.google_sub == sub:
            return GoogleLink("already", to_account(row))
        owner = (
            await session.execute(select(AccountRow.id).where(AccountRow.google_sub == sub))
        ).scalar_one_or_none()
        if owner is not None:
            return GoogleLink("taken")
        if row.google_sub is not None:
            return GoogleLink("other_identity")
        row.google_sub = sub
        row.google_picture = _google_picture(identity.picture)
        await session.flush()
        logger(__name__).info("google_connected", account_id=row.id)
        return GoogleLink("linked", to_account(row))

    def _google_outcome(self, row: AccountRow) -> GoogleOutcome:
        if row.disabled:
            return GoogleOutcome("disabled")
        return GoogleOutcome("second_factor" if row.totp_enabled else "ok", to_account(row))

    async def unlink_google(self, session: AsyncSession, account_id: str) -> bool:
        """Disconnect Google; refused (False) while it is the only way in (no password)."""
        row = await self._row(session, account_id)
        if row.password_hash is None:
            return False
        row.google_sub = None
        row.google_picture = None
        await session.flush()
        return True

    # --- helpers ----------------------------------------------------------------------------------

    def _subject(self, address: str) -> str:
        """A throttle key's subject for an address: its digest (no address in the table)."""
        return self.keys.digest("address", address)

    async def _row(self, session: AsyncSession, account_id: str) -> AccountRow:
        row = await session.get(AccountRow, account_id, populate_existing=True)
        if row is None:
            raise NoSuchAccount("There is no such account.")
        return row

    async def _hash(self, password: str) -> str:
        return await _hash(self.hasher, password)

    async def _verify(self, password_hash: str, password: str) -> bool:
        from argon2.exceptions import InvalidHashError, VerificationError

        secret = _password_bytes(password)
        if secret is None:
            return False
        try:
            return await asyncio.to_thread(self.hasher.verify, password_hash, secret)
        except (VerificationError, InvalidHashError):
            return False

    async def _dummy(self) -> str:
        """A hash of nothing, verified for an unknown address (made once, off the event
        loop like every hash: about 0.2 s of argon2id)."""
        if self._dummy_hash is None:
            self._dummy_hash = await asyncio.to_thread(self.hasher.hash, secrets.token_hex(16))
        return self._dummy_hash


# --- module helpers ----------------------------------------------------------------------


def _google_picture(picture: str | None) -> str | None:
    """The ID token's picture URL as kept: an https URL of sane length, else none."""
    if picture and len(picture) <= 2048 and picture.startswith("https://"):
        return picture
    return None


def _email(raw: str) -> str:
    try:
        return rules.normalize_email(raw)
    except rules.InvalidEmail as exc:
        raise InvalidInput(str(exc), field="email") from exc


def _check_password(password: str, address: str) -> None:
    problem = password_problem(password, email=address)
    if problem is not None:
        raise InvalidInput(problem.message, field="password")


def _password_bytes(password: str) -> bytes | None:
    """What is hashed: the NFKC form in UTF-8; None when too long to be a password of ours
    (hashing megabytes is what an attacker would like)."""
    if len(password) > MAX_BYTES:
        return None
    return normalize_password(password).encode("utf-8", "surrogatepass")


async def _hash(hasher: PasswordHasher, password: str) -> str:
    secret = _password_bytes(password)
    if secret is None:
        raise InvalidInput("The password is too long.", field="password")
    return await asyncio.to_thread(hasher.hash, secret)


async def _row_by_email(session: AsyncSession, email: str) -> AccountRow | None:
    try:
        address = rules.normalize_email(email)
    except rules.InvalidEmail:
        return None
    query = (
        select(AccountRow)
        .where(AccountRow.email == address)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(query)).scalar_one_or_none()


def _code_state(row: EmailCodeRow) -> CodeState:
    return CodeState(
        expires_at=row.expires_at,
        attempts=row.attempts,
        sends=row.sends,
        last_sent_at=row.last_sent_at,
    )


async def _renewing_plan(session: AsyncSession, account_id: str) -> bool:
    from mailvet.adapters.db.billing_models import BillingAccountRow
    from mailvet.domain.billing import renews

    query = select(BillingAccountRow.status, BillingAccountRow.cancel_at).where(
        BillingAccountRow.account_id == account_id, BillingAccountRow.subscription_id.is_not(None)
    )
    found = (await session.execute(query)).first()
    return found is not None and renews(found.status, found.cancel_at)
