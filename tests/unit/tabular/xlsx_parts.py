"""Workbooks written part by part (the XML as given, byte for byte), for the tests that need
what openpyxl does not write (cached formula values, hostile parts, lying zip headers)."""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG = "http://schemas.openxmlformats.org/package/2006/relationships"


# two cell styles: 0 the default, 1 a date (numFmt 14)
STYLES = (
    f'<?xml version="1.0"?><styleSheet xmlns="{MAIN}"><fonts count="1"><font/></fonts>'
    '<fills count="1"><fill><patternFill patternType="none"/></fill></fills>'
    '<borders count="1"><border/></borders>'
    '<cellStyleXfs count="1"><xf/></cellStyleXfs><cellXfs count="2"><xf numFmtId="0"/>'
    '<xf numFmtId="14" applyNumberFormat="1"/></cellXfs><cellStyles count="1">'
    '<cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles></styleSheet>'
).encode()


def sheet_xml(rows: str, dimension: str | None = "A1", extra: str = "") -> bytes:
    dim = f'<dimension ref="{dimension}"/>' if dimension else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<worksheet xmlns="{MAIN}" xmlns:r="{REL}">{dim}'
        f'<cols><col min="2" max="2" width="42.5" customWidth="1"/></cols>'
        f"<sheetData>{rows}</sheetData>{extra}</worksheet>"
    ).encode()


def shared_strings_xml(strings: Iterable[str]) -> bytes:
    items = "".join(f"<si><t>{s}</t></si>" for s in strings)
    return f'<?xml version="1.0" encoding="UTF-8"?><sst xmlns="{MAIN}">{items}</sst>'.encode()


def write_parts(
    path: Path,
    sheets: Mapping[str, bytes],
    shared: bytes | None = None,
    styles: bytes | None = None,
    more: Mapping[str, bytes] | None = None,
    active: int = 0,
) -> None:
    """A workbook of `sheets` (name -> sheet XML), in order, and the given parts."""
    names = list(sheets)
    rels = "".join(
        f'<Relationship Id="rId{i + 1}" Target="worksheets/sheet{i + 1}.xml"'
        f' Type="{REL}/worksheet"/>'
        for i in range(len(names))
    )
    if shared is not None:
        rels += f'<Relationship Id="rIdS" Target="sharedStrings.xml" Type="{REL}/sharedStrings"/>'
    if styles is not None:
        rels += f'<Relationship Id="rIdT" Target="styles.xml" Type="{REL}/styles"/>'
    book_sheets = "".join(
        f'<sheet name="{n}" sheetId="{i + 1}" r:id="rId{i + 1}"/>' for i, n in enumerate(names)
    )
    parts: dict[str, bytes] = {
        "[Content_Types].xml": _content_types(len(names), shared is not None, styles is not None),
        "_rels/.rels": (
            f'<?xml version="1.0"?><Relationships xmlns="{PKG}"><Relationship Id="rId1"'
            f' Type="{REL}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
        ).encode(),
        "xl/workbook.xml": (
            f'<?xml version="1.0"?><workbook xmlns="{MAIN}" xmlns:r="{REL}"><bookViews>'
            f'<workbookView activeTab="{active}"/></bookViews><sheets>{book_sheets}</sheets>'
            f"</workbook>"
        ).encode(),
        "xl/_rels/workbook.xml.rels": (
            f'<?xml version="1.0"?><Relationships xmlns="{PKG}">{rels}</Relationships>'
        ).encode(),
    }
    for i, name in enumerate(names):
        parts[f"xl/worksheets/sheet{i + 1}.xml"] = sheets[name]
    if shared is not None:
        parts["xl/sharedStrings.xml"] = shared
    if styles is not None:
        parts["xl/styles.xml"] = styles
    parts.update(more or {})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for part, data in parts.items():
            zf.writestr(part, data)


def _content_types(sheets: int, shared: bool, styles: bool) -> bytes:
    sml = "application/vnd.openxmlformats-officedocument.spreadsheetml"
    over = [("/xl/workbook.xml", f"{sml}.sheet.main+xml")]
    over += [(f"/xl/worksheets/sheet{i + 1}.xml", f"{sml}.worksheet+xml") for i in range(sheets)]
    if shared:
        over.append(("/xl/sharedStrings.xml", f"{sml}.sharedStrings+xml"))
    if styles:
        over.append(("/xl/styles.xml", f"{sml}.styles+xml"))
    overrides = "".join(f'<Override PartName="{p}" ContentType="{t}"/>' for p, t in over)
    return (
        '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
        'content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-'
        'package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
        f"{overrides}</Types>"
    ).encode()


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}
