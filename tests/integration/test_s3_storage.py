"""S3Storage on moto's S3 server: the ObjectStorage contract (tests/contracts/storage.py, as
for the local and memory adapters), plus what only S3 has (pre-signed links, the bucket,
endpoints) and resilience when S3 goes away."""

from __future__ import annotations

import asyncio
import contextlib
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import urllib3
from minio.error import S3Error, ServerError
from structlog.testing import capture_logs

from mailvet.adapters.retry import RetryPolicy
from mailvet.adapters.storage.s3 import S3Storage, StorageUnavailable, is_transient
from mailvet.domain.ports import ObjectNotFound, ObjectStorage, PresignedUpload
from tests.contracts.storage import BAD_KEYS, StorageContract
from tests.s3form import policy_of, post_form
from tests.s3server import MotoS3
from tests.unit.test_retry import Pauses
from tests.waiting import until

pytestmark = pytest.mark.integration


def new_bucket() -> str:
    return f"mailvet-{uuid.uuid4().hex[:16]}"  # moto's state is process-wide: one per test


def make_storage(
    s3: MotoS3, bucket: str | None = None, *, retry_for: float = 5.0, **kwargs: Any
) -> S3Storage:
    """A storage on `s3`, retrying for `retry_for` seconds (or through `retry=` as given)."""
    kwargs.setdefault("retry", RetryPolicy(retry_for=retry_for))
    return S3Storage(s3.endpoint, s3.access_key, s3.secret_key, bucket or new_bucket(), **kwargs)


def recorded(pauses: Pauses, **changes: Any) -> RetryPolicy:
    """A policy whose pauses are recorded and return at once, on a clock only they move."""
    return RetryPolicy(**{"jitter": False, "sleep": pauses, "clock": pauses.clock, **changes})


@pytest.fixture(scope="module")
def s3() -> Iterator[MotoS3]:
    yield from MotoS3().serve()


@pytest.fixture
def storage(s3: MotoS3) -> Iterator[S3Storage]:
    storage = make_storage(s3)
    yield storage
    storage.close()


@pytest.fixture
def flaky() -> Iterator[MotoS3]:
    """A server of its own, for tests that take it away."""
    yield from MotoS3().serve()


# --- the ObjectStorage contract (tests/contracts/storage.py), and S3's side of it -------


class TestS3(StorageContract):
    """The shared contract on S3 (the module's `storage` fixture), plus how S3 does it."""

    parallel_puts = 16

    async def test_a_large_file_goes_up_in_parts(self, storage: S3Storage, files: Path) -> None:
        source = files / "in.csv"
        source.write_bytes(b"email\n" + b"someone@example.com\n" * 1_000_000)  # 20 MB

        await storage.put_file("validation/uploaded/j1", source)

        stat = await asyncio.to_thread(
            storage.client.stat_object, storage.bucket, "validation/uploaded/j1"
        )
        assert stat.etag is not None and "-" in stat.etag  # a multipart ETag: <md5>-<parts>

    async def test_delete_prefix_beyond_one_page(self, storage: ObjectStorage) -> None:
        """The contract's test, and then the bucket's own listing holds only `keep`."""
        assert isinstance(storage, S3Storage)
        await super().test_delete_prefix_beyond_one_page(storage)

        left = await asyncio.to_thread(
            lambda: [
                o.object_name for o in storage.client.list_objects(storage.bucket, recursive=True)
            ]
        )
        assert left == ["keep"]

    @pytest.mark.parametrize("key", BAD_KEYS)
    def test_no_link_for_a_bad_key(self, storage: S3Storage, key: str) -> None:
        with pytest.raises(ValueError):
            storage.presigned_get(key)

    async def test_missing_source_file_is_not_retried(
        self, storage: S3Storage, files: Path
    ) -> None:
        with capture_logs() as logs, pytest.raises(FileNotFoundError):
            await storage.put_file("k", files / "missing-source")
        assert logs == []


# --- what only S3 has ---------------------------------------------------------------------


async def test_bucket_is_created_on_first_use(s3: MotoS3) -> None:
    bucket = new_bucket()
    storage = make_storage(s3, bucket)
    assert not await asyncio.to_thread(storage.client.bucket_exists, bucket)

    assert not await storage.exists("anything")
    assert await asyncio.to_thread(storage.client.bucket_exists, bucket)

    other = make_storage(s3, bucket)  # an existing bucket is fine, and so is asking twice
    await other.ensure_bucket()
    await other.ensure_bucket()
    await other.put_bytes("k", b"v")
    assert await storage.get_bytes("k") == b"v"


async def test_deleted_bucket_fails_fast_then_comes_back(storage: S3Storage) -> None:
    await storage.put_bytes("k", b"v")
    await storage.delete_prefix("k")
    await asyncio.to_thread(storage.client.remove_bucket, storage.bucket)

    with capture_logs() as logs, pytest.raises(S3Error) as caught:
        await storage.get_bytes("k")
    assert caught.value.code == "NoSuchBucket"
    assert logs == []  # not retried: no s3_retry warning, no backoff

    await storage.put_bytes("k", b"again")  # the next call creates the bucket again
    assert await storage.get_bytes("k") == b"again"


async def test_reset_wipes_the_state(flaky: MotoS3) -> None:
    storage = make_storage(flaky)
    await storage.put_bytes("k", b"v")

    await asyncio.to_thread(flaky.reset)

    assert not await asyncio.to_thread(storage.client.bucket_exists, storage.bucket)


async def test_url_endpoint(s3: MotoS3) -> None:
    bucket = new_bucket()
    by_url = S3Storage(s3.url, s3.access_key, s3.secret_key, bucket)
    by_host: ObjectStorage = S3Storage(s3.endpoint, s3.access_key, s3.secret_key, bucket)
    assert (by_url.endpoint, by_url.secure) == (s3.endpoint, False)

    await by_url.put_bytes("k", b"v")
    assert await by_host.get_bytes("k") == b"v"


def test_endpoint_forms() -> None:
    def parsed(endpoint: str, **kwargs: Any) -> tuple[str, bool]:
        storage = S3Storage(endpoint, "a", "b", "some-bucket", **kwargs)
        return storage.endpoint, storage.secure

    assert parsed("s3.example.com:9000") == ("s3.example.com:9000", False)
    assert parsed("s3.example.com", secure=True) == ("s3.example.com", True)
    assert parsed("https://s3.example.com") == ("s3.example.com", True)
    assert parsed("https://s3.example.com:9443/") == ("s3.example.com:9443", True)
    assert parsed("http://127.0.0.1:9000") == ("127.0.0.1:9000", False)
    for bad in ["", "ftp://host", "http://host/path", "http://user:pw@host", "host/path"]:
        with pytest.raises(ValueError):
            parsed(bad)
    with pytest.raises(ValueError):  # TLS asked for, but the URL says plain HTTP
        parsed("http://s3.example.com", secure=True)
    with pytest.raises(ValueError):
        S3Storage("host:9000", "a", "b", "No_Such")  # not a valid bucket name


async def test_presigned_get_is_served(storage: S3Storage) -> None:
    await storage.put_bytes("validation/results/j1", b"the results")

    link = storage.presigned_get("validation/results/j1")

    parts = urlsplit(link)
    assert parts.netloc == storage.endpoint
    assert parts.path == f"/{storage.bucket}/validation/results/j1"
    query = parse_qs(parts.query)
    assert query["X-Amz-Expires"] == ["60"]
    assert "X-Amz-Signature" in query
    # a presigned link to the local MinIO/moto server (http)
    body = await asyncio.to_thread(lambda: urllib.request.urlopen(link, timeout=10).read())  # noqa: S310
    assert body == b"the results"


def test_presigned_links_name_the_public_endpoint() -> None:
    storage = S3Storage(
        "minio:9000", "a", "b", "some-bucket", public_endpoint="https://files.example.com"
    )
    link = urlsplit(storage.presigned_get("validation/completed/j1"))
    assert (link.scheme, link.netloc) == ("https", "files.example.com")
    assert link.path == "/some-bucket/validation/completed/j1"
    assert storage.endpoint == "minio:9000"  # requests still go to the inside address


def test_presigned_get_expiry_bounds() -> None:
    """Computed locally: no server needed (and moto checks neither signature nor expiry)."""
    storage = S3Storage("127.0.0.1:1", "a", "b", "some-bucket")

    def expires(link: str) -> str:
        return parse_qs(urlsplit(link).query)["X-Amz-Expires"][0]

    assert expires(storage.presigned_get("k")) == "60"
    assert expires(storage.presigned_get("k", timedelta(minutes=5))) == "300"
    assert expires(storage.presigned_get("k", timedelta(days=7))) == "604800"
    for bad in [timedelta(days=7, seconds=1), timedelta(0), timedelta(seconds=-5)]:
        with pytest.raises(ValueError):
            storage.presigned_get("k", bad)
    with pytest.raises(TypeError):
        storage.presigned_get("k", 60)  # type: ignore[arg-type]
    a, b = storage.presigned_get("a/b"), storage.presigned_get("a/c")
    assert (
        parse_qs(urlsplit(a).query)["X-Amz-Signature"]
        != parse_qs(urlsplit(b).query)["X-Amz-Signature"]
    )


# --- direct uploads: the pre-signed POST (PresignedUpload) ------------------------------

REDIRECT = "https://app.example.com/app/jobs/new/d1/uploaded?expires=99&sig=abc"


def test_an_upload_policy_holds_the_key_the_size_and_the_redirect() -> None:
    storage = S3Storage(
        "minio:9000", "a", "b", "some-bucket", public_endpoint="https://files.example.com"
    )
    before = datetime.now(UTC)
    form = storage.presigned_post(
        "drafts/20261201/d1",
        max_bytes=1000,
        redirect=REDIRECT,
        expires=timedelta(hours=1),
        metadata=["filename"],
    )
    assert isinstance(storage, PresignedUpload)
    assert form.url == "https://files.example.com/some-bucket"
    names = [name for name, _ in form.fields]
    assert names[:3] == ["key", "success_action_redirect", "x-amz-meta-filename"]
    assert set(names[3:]) == {
        "x-amz-algorithm",
        "x-amz-credential",
        "x-amz-date",
        "policy",
        "x-amz-signature",
    }
    assert form.metadata == {"filename": "x-amz-meta-filename"}
    assert dict(form.fields)["x-amz-meta-filename"] == ""  # the page fills it in
    document = policy_of(form.fields)
    expiration = datetime.fromisoformat(document["expiration"])
    assert before + timedelta(minutes=59) < expiration <= datetime.now(UTC) + timedelta(hours=1)
    conditions = document["conditions"]
    assert ["eq", "$bucket", "some-bucket"] in conditions
    assert ["eq", "$key", "drafts/20261201/d1"] in conditions
    assert ["content-length-range", 1, 1000] in conditions
    assert ["starts-with", "$success_action_redirect", REDIRECT] in conditions
    assert ["starts-with", "$x-amz-meta-filename", ""] in conditions
    # nothing else may vary: no starts-with on the key, no other field left open
    opened = [c for c in conditions if c[0] == "starts-with"]
    assert len(opened) == 2
    signed = dict(form.fields)
    assert ["eq", "$x-amz-credential", signed["x-amz-credential"]] in conditions
    assert ["eq", "$x-amz-date", signed["x-amz-date"]] in conditions


def test_an_upload_policy_refuses_what_it_cannot_sign() -> None:
    storage = S3Storage("127.0.0.1:1", "a", "b", "some-bucket")
    good: dict[str, Any] = {
        "max_bytes": 10,
        "redirect": REDIRECT,
        "expires": timedelta(hours=1),
    }
    storage.presigned_post("drafts/x", **good)
    for key in BAD_KEYS:
        with pytest.raises(ValueError):
            storage.presigned_post(key, **good)
    bad_changes: list[dict[str, Any]] = [
        {"expires": timedelta(0)},
        {"expires": timedelta(days=7, seconds=1)},
        {"max_bytes": 0},
        {"redirect": "/app/jobs/new/d1/uploaded"},  # S3 would send the browser to itself
        {"redirect": "javascript:alert(1)"},
        {"metadata": ["file name"]},
        {"metadata": ["x\r\nx-amz-acl"]},
        {"metadata": [""]},
    ]
    for change in bad_changes:
        with pytest.raises(ValueError):
            storage.presigned_post("drafts/x", **{**good, **change})
    with pytest.raises(TypeError):
        storage.presigned_post("drafts/x", **{**good, "expires": 3600})


async def test_a_browser_upload_lands_at_the_key_with_its_metadata(storage: S3Storage) -> None:
    await storage.ensure_bucket()
    form = storage.presigned_post(
        "drafts/20261201/d2",
        max_bytes=1000,
        redirect=REDIRECT,
        expires=timedelta(minutes=5),
        metadata=["filename"],
    )
    answer = await post_form(
        form.url,
        form.fields,
        ("ignored.csv", b"email\nann@example.com\n"),
        values={"x-amz-meta-filename": "na%C3%AFve%20list.csv"},
    )
    assert answer.status_code == 303, answer.text
    location = urlsplit(answer.headers["location"])
    assert location.netloc == "app.example.com"
    assert parse_qs(location.query)["key"] == ["drafts/20261201/d2"]
    assert parse_qs(location.query)["sig"] == ["abc"]  # the app's own query is kept
    stored = await storage.stat("drafts/20261201/d2")
    assert stored.size == len(b"email\nann@example.com\n")
    assert stored.metadata == {"filename": "na%C3%AFve%20list.csv"}
    assert await storage.get_bytes("drafts/20261201/d2") == b"email\nann@example.com\n"
    with pytest.raises(ObjectNotFound):
        await storage.stat("drafts/20261201/none")
    with pytest.raises(ValueError):
        await storage.stat("../escape")


# --- resilience ---------------------------------------------------------------------------


def retries(logs: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == "s3_retry"]


@pytest.mark.parametrize("op", ["get_bytes", "put_bytes"])
async def test_survives_s3_coming_back(flaky: MotoS3, op: str) -> None:
    storage = make_storage(flaky, retry_for=15.0)
    await storage.put_bytes("k", b"secret contents")
    await asyncio.to_thread(flaky.stop)

    with capture_logs() as logs:
        if op == "get_bytes":
            task: asyncio.Task[object] = asyncio.create_task(storage.get_bytes("k"))
        else:
            task = asyncio.create_task(storage.put_bytes("k", b"new secret contents"))
        await until(lambda: len(retries(logs)) >= 2)  # it is trying again and again
        assert not task.done()
        await asyncio.to_thread(flaky.start)  # same port
        result = await asyncio.wait_for(task, 10)

    if op == "get_bytes":
        assert result == b"secret contents"
    else:
        assert await storage.get_bytes("k") == b"new secret contents"
    warnings = retries(logs)
    assert len(warnings) >= 2
    assert [w["attempt"] for w in warnings] == list(range(1, len(warnings) + 1))
    assert {w["op"] for w in warnings} == {op}
    assert all(w["log_level"] == "warning" for w in warnings)
    assert "Connection refused" in warnings[0]["error"]
    assert "secret" not in repr(logs)  # never object contents


async def test_gives_up_after_retry_for(flaky: MotoS3) -> None:
    pauses = Pauses()
    storage = make_storage(flaky, retry=recorded(pauses, retry_for=1.0))
    await storage.put_bytes("k", b"v")
    await asyncio.to_thread(flaky.stop)

    with capture_logs() as logs, pytest.raises(StorageUnavailable) as caught:
        await storage.get_bytes("k")

    # it gave up only once retry_for had passed: 0.2 + 0.4, then the 0.8 cut to what was left
    assert pauses.taken == pytest.approx([0.2, 0.4, 0.4])
    assert caught.value.elapsed == pytest.approx(1.0)
    assert caught.value.op == "get_bytes"
    assert caught.value.attempts == len(retries(logs)) + 1 == 4
    assert flaky.endpoint in str(caught.value)
    assert "Connection refused" in str(caught.value)
    assert isinstance(caught.value.__cause__, urllib3.exceptions.MaxRetryError)


async def test_first_use_waits_for_s3_too(flaky: MotoS3) -> None:
    """The bucket check of the first operation is retried like the operation itself."""
    storage = make_storage(flaky, retry_for=0.5)
    await asyncio.to_thread(flaky.stop)
    with pytest.raises(StorageUnavailable) as caught:
        await storage.put_bytes("k", b"v")
    assert caught.value.op == "ensure_bucket"

    await asyncio.to_thread(flaky.start)
    await storage.put_bytes("k", b"v")
    assert await storage.get_bytes("k") == b"v"


async def test_transfer_cut_by_a_crash_is_redone(flaky: MotoS3, tmp_path: Path) -> None:
    """S3 dies in the middle of a 20 MB upload and comes back: the upload is done again."""
    storage = make_storage(flaky, retry_for=15.0)
    source = tmp_path / "big"
    content = b"someone@example.com\n" * 1_000_000
    source.write_bytes(content)
    await storage.ensure_bucket()

    with capture_logs() as logs:
        before = flaky.connections
        task = asyncio.create_task(storage.put_file("big", source))
        await until(lambda: flaky.connections > before)  # the upload is under way
        await asyncio.to_thread(flaky.stop)
        await until(lambda: retries(logs))  # the cut was seen, and the upload is retried
        await asyncio.to_thread(flaky.start)
        await asyncio.wait_for(task, 15)

    assert retries(logs)  # it was cut (mid-request: reset; between parts: refused)

    copy = tmp_path / "copy"
    await storage.get_file("big", copy)
    assert copy.read_bytes() == content


class CuttingProxy:
    """A TCP proxy in front of S3 that cuts the answers to the first `cuts` GETs of one
    object: after `after` bytes of the answer (headers and part of the body) it closes the
    connection, as a network that drops halfway would."""

    def __init__(self, upstream: MotoS3, request_line: bytes, cuts: int, after: int) -> None:
        self.upstream = upstream
        self.request_line = request_line
        self.cuts_left = cuts
        self.after = after
        self.cut = 0
        self._server: asyncio.Server | None = None
        # the connections being served: cancelled and awaited on exit, so that none is left
        # pending (with its sockets open) when the test's event loop closes
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def endpoint(self) -> str:
        if self._server is None:
            raise RuntimeError("the proxy has not been started")
        return f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> CuttingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            handlers = list(self._handlers)
            for handler in handlers:
                handler.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        me = asyncio.current_task()
        assert me is not None
        self._handlers.add(me)
        sides = [writer]
        sending: asyncio.Task[None] | None = None
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream.port)
            sides.append(up_writer)
            first = await reader.readline()
            cut = self.cuts_left > 0 and first.startswith(self.request_line)
            if cut:
                self.cuts_left -= 1
                self.cut += 1
            up_writer.write(first)
            limit = self.after if cut else None
            sending = asyncio.create_task(_pump(reader, up_writer, None))
            await _pump(up_reader, writer, limit)
        except (OSError, asyncio.CancelledError):
            pass  # a client gone, or the proxy closing: the sockets are closed below
        finally:
            if sending is not None:
                sending.cancel()
                with contextlib.suppress(OSError, asyncio.CancelledError):
                    await sending
            for side in sides:
                side.close()
                with contextlib.suppress(OSError, asyncio.CancelledError):
                    await side.wait_closed()
            self._handlers.discard(me)


async def _pump(
    source: asyncio.StreamReader, sink: asyncio.StreamWriter, limit: int | None
) -> None:
    """Copy `source` to `sink` until EOF, or until `limit` bytes have gone."""
    sent = 0
    while limit is None or sent < limit:
        data = await source.read(65536 if limit is None else min(65536, limit - sent))
        if not data:
            break
        sink.write(data)
        await sink.drain()
        sent += len(data)


@pytest.mark.parametrize("cuts", [1, 3])
async def test_cut_download_leaves_no_partial_file(s3: MotoS3, tmp_path: Path, cuts: int) -> None:
    """Cut once: tried again, then complete. Cut on each of the policy's 3 tries: given up,
    and the old file is untouched. Either way no partial file is left beside it."""
    bucket = new_bucket()
    await make_storage(s3, bucket).put_bytes("k", b"x" * 100_000)
    target = tmp_path / "out"
    target.write_bytes(b"previous")
    pauses = Pauses()
    request = f"GET /{bucket}/k HTTP/".encode()
    async with CuttingProxy(s3, request, cuts=cuts, after=4000) as proxy:
        storage = S3Storage(
            proxy.endpoint,
            s3.access_key,
            s3.secret_key,
            bucket,
            retry=recorded(pauses, retry_for=60.0, max_attempts=3),
        )
        if cuts == 1:
            await storage.get_file("k", target)
            assert target.read_bytes() == b"x" * 100_000
            assert len(pauses.taken) == 1
        else:
            with pytest.raises(StorageUnavailable) as caught:
                await storage.get_file("k", target)
            assert caught.value.attempts == 3 and "IncompleteRead" in str(caught.value)
            assert target.read_bytes() == b"previous"
        storage.close()
    assert proxy.cut == cuts  # each try was cut halfway, nothing else was
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_what_is_retried() -> None:
    def s3_error(code: str, status: int) -> S3Error:
        response = urllib3.HTTPResponse(status=status)
        return S3Error(response, code, "msg", "/b/k", "rid", "hid", "b", "k")

    refused = urllib3.exceptions.NewConnectionError(None, "[Errno 111] Connection refused")  # type: ignore[arg-type]
    assert is_transient(urllib3.exceptions.MaxRetryError(None, "/b/k", refused))  # type: ignore[arg-type]
    assert is_transient(urllib3.exceptions.ProtocolError("Connection aborted"))
    assert is_transient(urllib3.exceptions.ReadTimeoutError(None, "/b/k", "read timed out"))  # type: ignore[arg-type]
    assert is_transient(ConnectionResetError())
    assert is_transient(TimeoutError())
    assert is_transient(ServerError("bad gateway", 502))
    assert is_transient(s3_error("InternalError", 500))
    assert is_transient(s3_error("SlowDown", 503))
    assert is_transient(s3_error("RequestTimeout", 400))
    assert not is_transient(s3_error("NoSuchKey", 404))
    assert not is_transient(s3_error("NoSuchBucket", 404))
    assert not is_transient(s3_error("AccessDenied", 403))
    assert not is_transient(s3_error("NotImplemented", 501))
    assert not is_transient(FileNotFoundError())
    assert not is_transient(ValueError())
