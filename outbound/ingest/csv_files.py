"""CSV files outbound reads (contacts, Do-Not-Call lists), parsed strictly, with the line of every problem.

A lenient CSV reader takes a quote that is never closed as the start of one long cell and swallows
every row after it into that cell without a word. Here the reader is strict: a record it cannot read
(a quote never closed, text after a closing quote, a cell longer than the reader's limit) is reported
at the line it starts on, and reading starts again on the next line, so the rows it swallowed are
read as the rows they are. A quoted cell may still hold line breaks (an address, a consent's
wording): that record spans several lines and says so.
"""

from __future__ import annotations

import csv
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Record:
    """One CSV record: its first and last line in the file, and its cells (None when it is `unreadable`)."""

    first: int
    last: int
    cells: list[str] | None
    unreadable: str | None = None

    @property
    def span(self) -> str:
        """Where a quoted cell ran over several lines, for an error message; empty for a one-line record."""
        return "" if self.first == self.last else f" (a quoted cell runs from line {self.first} to line {self.last})"


class _Lines:
    """The file's lines as the CSV reader asks for them, numbered, with a way to read some of them again."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = iter(lines)
        self._read = 0
        self._again: deque[tuple[int, str]] = deque()
        self.taken: list[tuple[int, str]] = []

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self._again:
            number, line = self._again.popleft()
        else:
            line = next(self._lines)
            self._read += 1
            number = self._read
        self.taken.append((number, line))
        return line

    def read_again(self, lines: list[tuple[int, str]]) -> None:
        self._again.extendleft(reversed(lines))


def csv_records(lines: Iterable[str]) -> Iterator[Record]:
    """Each record of the CSV text in `lines` (a file opened with `newline=""`), strictly parsed.

    An unreadable record is yielded with its first line and why (`unreadable`), and the lines after
    that first one are read again as records of their own. Memory stays bounded: the reader refuses
    a cell longer than `csv.field_size_limit()`, so no more than that is ever read twice.
    """
    source = _Lines(lines)
    reader = csv.reader(source, strict=True)
    while True:
        source.taken = []
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            (first, _), *rest = source.taken
            last = source.taken[-1][0]
            source.read_again(rest)
            yield Record(first, first, None, _why(str(error), first, last))
            continue
        yield Record(source.taken[0][0], source.taken[-1][0], cells)


def csv_line(line: str, number: int) -> Record:
    """One line of a line-oriented file (a Do-Not-Call list) read as a CSV record on its own, strictly."""
    try:
        cells = next(csv.reader([line], strict=True), [])
    except csv.Error as error:
        return Record(number, number, None, _why(str(error), number, number))
    return Record(number, number, cells)


def _why(error: str, first: int, last: int) -> str:
    if error.startswith("unexpected end of data"):
        return "unreadable CSV: the quote opened on this line is never closed"
    if error.startswith("',' expected after '\"'"):
        where = "" if last == first else f" on line {last}"
        return (
            f"unreadable CSV: the quote opened on this line is closed{where} and followed by text "
            '(write a quote inside a quoted cell as "")'
        )
    if error.startswith("field larger than field limit"):
        return f"unreadable CSV: a cell longer than {csv.field_size_limit()} characters (is a quote never closed?)"
    return f"unreadable CSV: {error}" + ("" if last == first else f" (at line {last})")
