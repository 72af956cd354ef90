"""Files in and out: find the email column of an uploaded list, stream it, write the result.

A customer uploads an email list as CSV, TXT (one address per line) or XLSX and
gets back the same file with verdict columns appended.  This package

* detects the layout of the file (``detect``: :func:`detect_layout`; the layout
  itself is ``layout``: :class:`FileLayout`, and the encodings ``encoding``),
* streams the email cell of every data row (``records``: :func:`iter_emails`,
  :func:`count_rows`; XLSX workbooks are opened in ``xlsx``),
* writes the result file (``write``: :func:`write_result`),
* cuts CSV and TXT files into chunks of raw records that pipeline workers parse
  and render on their own (``chunks``: :func:`header_text`, :func:`iter_text_chunks`,
  :func:`chunk_emails`, over the record cutter of ``csv_cutter``; ``render``:
  :func:`render_header`, :func:`render_chunk`; :func:`output_encoding`): BOM +
  rendered header + rendered chunks, in order, is the file :func:`write_result`
  writes, byte for byte.

Everything is streamed: no function holds all rows in memory, so a file of a
million rows costs a few MiB whatever its size.

Definitions shared by every function (they must agree exactly):

* A *record* is what :class:`csv.reader` yields (one line, or several when a
  quoted field holds line breaks); for TXT a line; for XLSX a sheet row.
* The first ``skip_records`` records are the preamble and the header (the
  header being the last of them when ``has_header``).
* Every later record is a *data row*, except blank records: a CSV line that is
  completely empty (``csv.reader`` yields ``[]``), a TXT line holding only
  white space, an XLSX row whose cells are all empty (``None``).  Blank records
  are not rows: they are not counted, get no verdict, and are copied unchanged
  to a CSV result (TXT results drop them; trailing empty XLSX rows are dropped,
  empty XLSX rows between rows are kept as empty rows).
* A data row whose email cell is empty or missing (row too short) is still a
  row; its email is ``""``.

CSV output keeps the input byte for byte: every record's raw text, with its
own quoting, embedded line breaks and line terminator, is written unchanged
with ``delimiter + extra cells`` inserted before its terminator, in the input's
encoding and BOM.  A row shorter than the header gets the extra cells right
after its own cells (no padding), so its extras sit under the wrong header
names; rows are never re-quoted or padded, to keep the bytes of the input.
Files without a header get no header line in the result either.

XLSX and TXT inputs are re-written rather than copied (XLSX → XLSX or CSV,
TXT → CSV, both CSV in UTF-8 without BOM and with ``\\r\\n`` line ends).  In
those outputs rows shorter than the header are padded with empty cells so that
the extra columns line up.
"""

from mailvet.tabular.chunks import chunk_emails, header_text, iter_text_chunks
from mailvet.tabular.detect import detect_layout
from mailvet.tabular.encoding import OUTPUT_ERRORS, output_encoding
from mailvet.tabular.layout import FileLayout, InputError
from mailvet.tabular.records import count_rows, iter_emails
from mailvet.tabular.render import render_chunk, render_header
from mailvet.tabular.transit import Chunk, job_chunks, result_header
from mailvet.tabular.workbook import Workbooks, XlsxLimits
from mailvet.tabular.write import input_is_xlsx, kind_of_name, result_kind, write_result

__all__ = [
    "OUTPUT_ERRORS",
    "Chunk",
    "FileLayout",
    "InputError",
    "Workbooks",
    "XlsxLimits",
    "chunk_emails",
    "count_rows",
    "detect_layout",
    "header_text",
    "input_is_xlsx",
    "iter_emails",
    "iter_text_chunks",
    "kind_of_name",
    "job_chunks",
    "output_encoding",
    "render_chunk",
    "render_header",
    "result_header",
    "result_kind",
    "write_result",
]
