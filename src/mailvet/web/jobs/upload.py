"""Receive a multipart upload straight into a temporary file.

Litestar's form parsing keeps every non-file field in memory with no bound of its own and
spools the file into an anonymous temporary file that would then be copied again. Here the
body is parsed once, as it arrives: the part named `file` goes to a named file in the data
folder, written in 1 MiB batches off the event loop; the other fields are capped at
MAX_FIELD_BYTES; other file parts are dropped. The body limit itself is Litestar's
`request_max_body_size`, enforced while the body streams in. A client that stops sending
for `idle_seconds` (MAILVET_WEB_UPLOAD_IDLE_SECONDS) is answered 408 and its partial file
removed; a file name that is not UTF-8 or longer than MAX_FILENAME_CHARS is a 400 saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Literal
from urllib.parse import unquote

from litestar import Request
from litestar.exceptions import ClientException, HTTPException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from multipart import (
    MultipartSegment,
    ParserError,
    ParserLimitReached,
    PushMultipartParser,
)

from mailvet.settings import Settings

MiB = 1024 * 1024
MAX_UPLOAD_BYTES = 200 * MiB  # the whole request body
MAX_FIELD_BYTES = 1024  # any form field other than the file
MAX_PARTS = 16
MAX_FILENAME_CHARS = 255
FILE_FIELD = "file"
DEFAULT_FILENAME = "upload"  # a file sent without a usable name
UPLOAD_IDLE_SECONDS = 30.0  # default of MAILVET_WEB_UPLOAD_IDLE_SECONDS
_WRITE_BATCH = MiB


@dataclass(frozen=True)
class Upload:
    """The received file (the caller deletes `path`) and the other form fields."""

    path: Path
    filename: str
    size: int
    fields: dict[str, str] = field(default_factory=dict)


def scratch_dir(settings: Settings) -> Path:
    """Where the web process keeps files in transit: under the data folder, not /tmp
    (often a RAM disk, which would hold a 200 MiB upload in memory after all)."""
    return settings.scratch_dir


def clean_filename(raw: str) -> str:
    """The last path component of a client's file name, without control characters."""
    name = PurePosixPath(raw.replace("\\", "/")).name
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name[-MAX_FILENAME_CHARS:]


def upload_filename(raw: str) -> str:
    """The name a draft keeps: `clean_filename`, DEFAULT_FILENAME when nothing is left."""
    return clean_filename(raw) or DEFAULT_FILENAME


def metadata_filename(raw: str) -> str:
    """The file name a direct upload brought as storage metadata, as `upload_filename`
    keeps it. jobs.js writes it percent-encoded (UTF-8), which S3 keeps as it is; a client
    that sent raw UTF-8 instead comes back as the Latin-1 reading of its bytes, undone here."""
    raw = raw[: 4 * 3 * MAX_FILENAME_CHARS]  # the longest a name can honestly be
    with contextlib.suppress(UnicodeError):
        raw = raw.encode("latin-1").decode("utf-8")
    return upload_filename(unquote(raw, errors="replace"))


class UploadStalled(HTTPException):
    status_code = 408


async def receive_upload(
    request: Request[Any, Any, Any],
    directory: Path,
    *,
    idle_seconds: float = UPLOAD_IDLE_SECONDS,
    before_file: Callable[[dict[str, str]], Awaitable[None]] | None = None,
) -> Upload:
    """Stream the multipart body of `request` into `directory`; ClientException (400) for
    a body that is not a usable upload, RequestEntityTooLarge (413) past the body limit,
    UploadStalled (408) when no byte came for `idle_seconds`. `before_file` is given the
    fields received so far when the file part begins, before a byte of it is kept, and may
    raise to refuse the upload (the lists area checks its CSRF token so). Nothing is left
    in `directory` when it raises."""
    media_type, options = request.content_type
    if media_type != "multipart/form-data":
        raise ClientException(
            f"send the list as multipart/form-data, the file in the field {FILE_FIELD!r}"
        )
    boundary = options.get("boundary")
    if not boundary:
        raise ClientException("multipart/form-data without a boundary")
    receiver = _Receiver(directory, before_file)
    try:
        try:
            with PushMultipartParser(boundary, max_segment_count=MAX_PARTS) as parser:
                chunks = request.stream().__aiter__()
                while not parser.closed:
                    try:
                        async with asyncio.timeout(idle_seconds):
                            chunk = await anext(chunks)
                    except StopAsyncIteration:
                        break
                    for event in parser.parse(chunk):
                        await receiver.feed(event)
        except TimeoutError:
            raise UploadStalled(
                detail=f"the upload stalled: nothing received for {idle_seconds:g} s"
            ) from None
        except RequestEntityTooLarge:
            limit = request.route_handler.resolve_request_max_body_size()
            raise RequestEntityTooLarge(
                detail=f"the upload is larger than the limit of {size_text(limit)}"
            ) from None
        except ParserLimitReached as exc:
            if "header" in _first(exc):
                raise ClientException(
                    "a part's header is too long in the multipart body (a file name may have"
                    f" at most {MAX_FILENAME_CHARS} characters)"
                ) from None
            raise ClientException(
                f"too many parts in the multipart body (at most {MAX_PARTS})"
            ) from None
        except ParserError as exc:
            if any(isinstance(arg, UnicodeDecodeError) for arg in exc.args):
                raise ClientException(
                    "a part's header is not UTF-8 text: send the file name in UTF-8"
                ) from None
            raise ClientException(f"malformed multipart body: {_first(exc)}") from None
        return receiver.finish()
    except BaseException:
        await receiver.discard()
        raise


def _first(exc: Exception) -> str:
    """The parser's own message, without the repr of what it wraps."""
    return str(exc.args[0]) if exc.args else type(exc).__name__


def size_text(limit: int | None) -> str:
    """A byte limit as the pages say it (`200 MiB`, `1000 bytes`)."""
    if limit is None:
        return "none"
    if limit % MiB == 0:
        return f"{limit // MiB} MiB"
    return f"{limit} bytes"


class _Receiver:
    """Takes the parser's events: a segment header, body chunks, None at its end."""

    def __init__(
        self,
        directory: Path,
        before_file: Callable[[dict[str, str]], Awaitable[None]] | None = None,
    ) -> None:
        self._directory = directory
        self._before_file = before_file
        self._fields: dict[str, str] = {}
        self._path: Path | None = None
        self._handle: BinaryIO | None = None
        self._filename = ""
        self._size = 0
        self._pending = bytearray()
        self._target: Literal["file", "field", "skip"] = "skip"
        self._name = ""
        self._value = bytearray()

    async def feed(self, event: MultipartSegment | bytes | bytearray | None) -> None:
        if isinstance(event, MultipartSegment):
            if event.name == FILE_FIELD and self._before_file is not None:
                check, self._before_file = self._before_file, None
                await check(dict(self._fields))
            self._start(event)
        elif event:
            await self._data(event)
        else:
            await self._end()

    def _start(self, segment: MultipartSegment) -> None:
        self._name = str(segment.name or "")
        filename: str | None = segment.filename
        if self._name == FILE_FIELD:
            if filename is None:
                raise ClientException(
                    f"the field {FILE_FIELD!r} must be a file (a part with a filename)"
                )
            if self._path is not None:
                raise ClientException("send one file per upload")
            if not filename:  # a browser form submitted with no file chosen
                self._target = "skip"
                return
            if len(filename) > MAX_FILENAME_CHARS:
                raise ClientException(
                    f"the file name is longer than {MAX_FILENAME_CHARS} characters"
                )
            self._directory.mkdir(parents=True, exist_ok=True)
            self._path = self._directory / f"upload-{uuid.uuid4().hex}.part"
            self._handle = self._path.open("xb")
            self._filename = upload_filename(filename)
            self._target = "file"
        elif filename is not None:
            self._target = "skip"  # another file: not ours to keep
        else:
            self._value = bytearray()
            self._target = "field"

    async def _data(self, chunk: bytes | bytearray) -> None:
        if self._target == "file":
            self._size += len(chunk)
            self._pending += chunk
            if len(self._pending) >= _WRITE_BATCH:
                await self._flush()
        elif self._target == "field":
            if len(self._value) + len(chunk) > MAX_FIELD_BYTES:
                raise ClientException(
                    f"the form field {self._name!r} is longer than {MAX_FIELD_BYTES} bytes"
                )
            self._value += chunk

    async def _end(self) -> None:
        if self._target == "file":
            await self._flush()
            if self._handle is None:  # never: a file part opens its handle as it starts
                raise RuntimeError("a file part without its file")
            await asyncio.to_thread(self._handle.close)
        elif self._target == "field":
            try:
                self._fields[self._name] = self._value.decode("utf-8")
            except UnicodeDecodeError:
                raise ClientException(f"the form field {self._name!r} is not UTF-8 text") from None
        self._target = "skip"

    async def _flush(self) -> None:
        if self._pending and self._handle is not None:
            data, self._pending = self._pending, bytearray()
            await asyncio.to_thread(self._handle.write, data)

    def finish(self) -> Upload:
        if self._path is None:
            raise ClientException(f"no file: send the list in the multipart field {FILE_FIELD!r}")
        if self._size == 0:
            raise ClientException("the uploaded file is empty")
        return Upload(
            path=self._path, filename=self._filename, size=self._size, fields=self._fields
        )

    async def discard(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                self._handle.close()
        if self._path is not None:
            self._path.unlink(missing_ok=True)
