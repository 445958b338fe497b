"""A CSV file read in chunks of records: each chunk a frame of stripped text cells with the line number of
every record, so that a file of any size is validated and loaded in bounded memory.

Records are what `csv.reader` reads, cells stripped as `str.strip` does, blank lines skipped, and a record's
line number is `csv.reader`'s `line_num` after it (its last physical line; the header is line 1). Blocks of
ASCII lines without quotes (every line one record) are parsed by Arrow's CSV reader; any other block by
`csv.reader` itself, so quoting, embedded newlines and non-ASCII text keep the standard library's meaning.
"""

from __future__ import annotations

import csv
import io
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from asteroid.prefetch import prefetched

DEFAULT_CHUNK_ROWS = 100_000
# What `str.strip()` removes from ASCII text.
_ASCII_WHITESPACE = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"


class EmptyFile(ValueError):
    """The file has no header row."""


@dataclass
class Chunk:
    """Consecutive records of the file.

    `text` has one column per header name, in header order, of stripped cells; a record with the wrong number
    of fields has empty cells there and its own stripped fields in `ragged`, by position.
    """

    lines: np.ndarray
    text: pd.DataFrame
    ragged: dict[int, list[str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.lines)

    def fields(self, position: int) -> list[str]:
        """The stripped fields of one record as read."""
        if position in self.ragged:
            return self.ragged[position]
        return [str(value) for value in self.text.iloc[position]]


class CsvChunks:
    """Open a CSV, read its header; iterate to get `Chunk`s of at most `chunk_rows` physical lines."""

    def __init__(self, path: str | Path, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> None:
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
        self.path = Path(path)
        self.chunk_rows = chunk_rows
        self.total_bytes = os.path.getsize(self.path)
        self._handle: TextIO = self.path.open(newline="", encoding="utf-8-sig")
        reader = csv.reader(self._handle)
        header = next(reader, None)
        if not header:
            self.close()
            raise EmptyFile(f"{self.path} is empty: expected a header row")
        self.header = [name.strip() for name in header]
        self._line = reader.line_num  # physical lines consumed so far

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> CsvChunks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def bytes_read(self) -> int:
        """About how far into the file reading is (the decoder reads ahead a little)."""
        return min(self._handle.buffer.tell(), self.total_bytes)

    def __iter__(self) -> Iterator[Chunk]:
        while True:
            lines = list(itertools.islice(self._handle, self.chunk_rows))
            if not lines:
                return
            chunk = _simple_block(lines, self._line + 1, self.header)
            if chunk is None:
                chunk, consumed = _csv_block(lines, self._handle, self._line, self.header)
            else:
                consumed = len(lines)
            self._line += consumed
            if len(chunk):
                yield chunk


def read_ahead(chunks: CsvChunks) -> Iterator[tuple[Chunk, float]]:
    """The chunks with how far into the file each ended (0–1), the next one read on a thread while the
    caller works on this one: Arrow's parse and trim, most of a chunk's reading, let go of the GIL."""

    def with_fraction() -> Iterator[tuple[Chunk, float]]:
        for chunk in chunks:
            yield chunk, chunks.bytes_read() / max(chunks.total_bytes, 1)

    return prefetched(with_fraction(), "csv-read-ahead")


def _simple_block(lines: list[str], first_line: int, header: list[str]) -> Chunk | None:
    """The records of lines that are ASCII without quotes, one record per non-blank line; None when the block
    has anything else (`_csv_block` reads it)."""
    joined = "".join(lines)
    if '"' in joined or "\x00" in joined or not joined.isascii():
        return None
    width = len(header)
    numbers: list[int] = []
    records: list[str] = []
    ragged: dict[int, list[str]] = {}
    empty_record = "," * (width - 1)
    for offset, line in enumerate(lines):
        content = line.rstrip("\r\n")  # one terminator at most: newline="" splits at \r, \n and \r\n
        if not content:
            continue
        if content.count(",") != width - 1:
            ragged[len(records)] = [cell.strip() for cell in content.split(",")]
            content = empty_record
        numbers.append(first_line + offset)
        records.append(content)
    if not records:
        return Chunk(np.array(numbers, dtype=np.int64), pd.DataFrame(columns=header, dtype=str))
    text = "\n".join(records)
    return Chunk(
        np.array(numbers, dtype=np.int64),
        _parse_plain(text, header),
        ragged,
    )


def _parse_plain(records: str, header: list[str]) -> pd.DataFrame:
    """Arrow's parse of unquoted, ASCII, full-width records as text, every cell stripped.

    Measured on 200,000 sample rows: Arrow's trim of every cell cost less CPU (0.3 s less) than looking for
    signs of padding in the text first to skip it."""
    positional = [str(index) for index in range(len(header))]
    table = pa_csv.read_csv(
        io.BytesIO(records.encode("ascii")),
        read_options=pa_csv.ReadOptions(column_names=positional, use_threads=False),
        parse_options=pa_csv.ParseOptions(quote_char=False, ignore_empty_lines=False),
        convert_options=pa_csv.ConvertOptions(
            column_types=dict.fromkeys(positional, pa.string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    columns = {
        name: pc.ascii_trim(table.column(position), characters=_ASCII_WHITESPACE)
        for name, position in zip(header, positional, strict=True)
    }
    return pa.table(columns).to_pandas()


def _csv_block(lines: list[str], rest: TextIO, line_before: int, header: list[str]) -> tuple[Chunk, int]:
    """The records `csv.reader` reads from lines (and on into the file when the last record's quotes go on),
    and how many physical lines it consumed."""
    reader = csv.reader(itertools.chain(lines, rest))
    width = len(header)
    numbers: list[int] = []
    cells: list[list[str]] = []
    ragged: dict[int, list[str]] = {}
    while reader.line_num < len(lines):
        row = next(reader, None)
        if row is None:
            break
        if not row:
            continue
        stripped = [cell.strip() for cell in row]
        if len(stripped) != width:
            ragged[len(cells)] = stripped
            stripped = [""] * width
        numbers.append(line_before + reader.line_num)
        cells.append(stripped)
    text = (
        pd.DataFrame(cells, columns=header, dtype=str) if cells else pd.DataFrame(columns=header, dtype=str)
    )
    return Chunk(np.array(numbers, dtype=np.int64), text, ragged), reader.line_num
