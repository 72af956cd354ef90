"""web/site.py: the SaaS of one web process. Its lifespan starts the outbox sender (a sign-up's
mail leaves without anyone calling it), the housekeeping and the retention tasks, and
stops them; every area answers (sign-in, account, admin, lists); `close` is idempotent."""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from mailvet.adapters.bus.memory import MemoryBus
from mailvet.adapters.mail.memory import MemoryMailer
from mailvet.adapters.storage.memory import MemoryStorage
from mailvet.bootstrap import build_deps
from mailvet.settings import load_settings
from mailvet.web.site import build_site
from tests.fakes import FakeProber, FakeResolver, WatchedJobs
from tests.waiting import until
from tests.web.auth_helpers import Browser, sign_up
from tests.web.shell_helpers import HTTPS, cheap_hasher

pytestmark = pytest.mark.pipeline


async def test_the_site_serves_every_area_and_mails_from_its_lifespan(tmp_path: Path) -> None:
    settings = load_settings(
        {"MAILVET_DATA_DIR": str(tmp_path), "MAILVET_PUBLIC_URL": HTTPS, "MAILVET_MAILER": "log"}
    )
    deps = await build_deps(
        settings,
        jobs=WatchedJobs(),
        storage=MemoryStorage(),
        bus=MemoryBus(),
        resolver=FakeResolver(),
        prober=FakeProber(),
        syntax_pool=None,
    )
    mailer = MemoryMailer()
    try:
        site = await build_site(deps, hasher=cheap_hasher(), mailer=mailer)
        assert site.tasks == []  # nothing runs before the app starts
        async with AsyncTestClient(site.app, base_url=HTTPS) as client:
            assert sorted(task.get_name() for task in site.tasks) == [
                "mail-outbox",
                "retention",
                "web-housekeeping",
                "webhooks",
            ]
            b = Browser(client)
            for path, status in [
                ("/", 200),
                ("/signup", 200),
                ("/login", 200),
                ("/app/account", 303),
                ("/admin", 303),
                ("/app", 303),
            ]:
                answer = await b.get(path)
                assert answer.status_code == status, path
            answer = await sign_up(b, "ann.lee@example.com")
            assert answer.status_code == 303
            await until(lambda: mailer.sent)  # delivered by the site's own sender
            assert "confirmation code" in mailer.sent[0]["Subject"]
            running = list(site.tasks)
        assert site.tasks == [] and all(task.done() for task in running)
        await site.close()  # again: nothing left to do
    finally:
        await deps.close()
