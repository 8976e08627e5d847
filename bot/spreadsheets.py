"""Spreadsheets in the style county offices report upward (台账): a bold, shaded header row, columns as wide as
their text (Chinese counted double) up to a cap, long text wrapped, the header frozen with a filter; residents'
words always stored as text (never a formula). `save` writes so that a failed export leaves no half-written file.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # openpyxl is imported where a workbook is made: every CLI command would pay for it at start
    from openpyxl import Workbook

DEFAULT_MAX_WIDTH = 24
MIN_WIDTH = 6
EXCEL_CELL_LIMIT = 32767
Cell = str | int | float | None


def display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def cell_text(value: str) -> str:
    """Characters a worksheet cannot hold removed, cut to Excel's cell limit."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    return ILLEGAL_CHARACTERS_RE.sub("", value)[:EXCEL_CELL_LIMIT]


def new_workbook() -> Workbook:
    """A workbook without sheets (add them with `add_sheet`)."""
    from openpyxl import Workbook

    book = Workbook()
    first = book.active
    if first is not None:
        book.remove(first)
    return book


def add_sheet(book: Workbook, title: str, header: Sequence[str], rows: Sequence[Sequence[Cell]],
              max_width: Mapping[str, int] | None = None) -> None:
    """A sheet in the 台账 style; columns named in `max_width` wrap at that width."""
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    caps = dict(max_width or {})
    sheet = book.create_sheet(title)
    bold = Font(bold=True)
    fill = PatternFill("solid", fgColor="DDEBF7")
    centered = Alignment(horizontal="center", vertical="center", wrap_text=True)
    for col, name in enumerate(header, start=1):
        cell = sheet.cell(row=1, column=col, value=name)
        cell.font, cell.fill, cell.alignment = bold, fill, centered
    widths = [display_width(name) for name in header]
    wrapped = [name in caps for name in header]
    top = Alignment(vertical="top")
    top_wrapped = Alignment(vertical="top", wrap_text=True)
    for r, values in enumerate(rows, start=2):
        for c, value in enumerate(values, start=1):
            cell = sheet.cell(row=r, column=c)
            if isinstance(value, str):
                cell.value = cell_text(value)
                # residents' words are text, never a formula (openpyxl takes any "=..." string for one)
                cell.data_type = "s"
                longest = max((display_width(line) for line in value.splitlines()), default=0)
            else:
                cell.value = value
                longest = len(str(value)) if value is not None else 0
            widths[c - 1] = max(widths[c - 1], longest)
            cell.alignment = top_wrapped if wrapped[c - 1] else top
    for c, name in enumerate(header, start=1):
        cap = caps.get(name, DEFAULT_MAX_WIDTH)
        sheet.column_dimensions[get_column_letter(c)].width = max(MIN_WIDTH, min(widths[c - 1], cap)) + 2
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(header))}{len(rows) + 1}"


def save(book: Workbook, path: Path, confidential: bool = False) -> None:
    """Write beside the target and rename over it, so a failed export leaves no half-written file. A confidential
    workbook (with identities) is readable by its owner only."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        book.save(tmp)
        if confidential:
            tmp.chmod(0o600)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
