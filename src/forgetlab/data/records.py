"""Raw rows before they become :class:`MCDoc` items, and readers for the generic file formats.

A :class:`Record` is one row in the Hugging Face field layout of a task (the dict lm-eval's
templates are rendered on) plus ``origin``, a human-readable "file line N" / "row N" pointer used
in every error message.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path
from typing import Any, Iterator, NamedTuple

# CSV cells may hold whole documents (MUSE books); Python's default limit is 128 KiB per cell.
CSV_FIELD_LIMIT = 2**31 - 1


class Record(NamedTuple):
    """One row in a task's HF field layout and where it came from (for error messages)."""

    doc: dict[str, Any]
    origin: str


def data_error(origin: str, message: str) -> ValueError:
    """A ValueError that starts with the row's origin (file and line/row)."""
    return ValueError(f"{origin}: {message}")


def require(row: dict[str, Any], field: str, origin: str) -> Any:
    """``row[field]``, or a ValueError naming the origin and the missing field."""
    if field not in row:
        present = ", ".join(sorted(row)) or "(none)"
        raise data_error(origin, f"missing field {field!r} (fields present: {present})")
    return row[field]


def read_text(path: str | Path) -> str:
    """A UTF-8 text file's content (a BOM dropped; gzip files unpacked); bytes that are not UTF-8 raise a
    ValueError naming the file, the line and the column."""
    path = Path(path)
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        column = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
        bad = raw[error.start : error.end].hex(" ")
        raise data_error(f"{path} line {line}", f"not UTF-8 text (byte(s) {bad} at column {column})") from None


def open_text(path: str | Path, *, newline: str | None = None) -> io.StringIO:
    """:func:`read_text` as a file object (``newline=""`` for the csv module, else universal newlines)."""
    text = read_text(path)
    return io.StringIO(text if newline == "" else text.replace("\r\n", "\n").replace("\r", "\n"), newline="")


def read_jsonl(path: Path) -> list[Record]:
    """Rows of a JSON-lines file (blank lines skipped): one object per line, or one array of objects per line
    (``Dataset.to_json(lines=False)`` writes those); origin ``"<path> line <n>"`` (``"... item <j>"`` in an array)."""
    records = []
    with open_text(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            origin = f"{path} line {lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise data_error(origin, f"invalid JSON: {exc.msg}") from None
            rows = row if isinstance(row, list) else [row]  # datasets' to_json(lines=False) writes arrays in batches
            for j, item in enumerate(rows):
                where = f"{origin} item {j}" if rows is row else origin
                if not isinstance(item, dict):
                    raise data_error(where, f"expected a JSON object, got {type(item).__name__}")
                records.append(Record(item, where))
    return records


def read_json(path: Path) -> list[Record]:
    """Rows of a JSON file: an array of objects, an object with a ``data`` array, or JSON lines."""
    text = read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return read_jsonl(path)  # HF's Dataset.to_json writes JSON lines even to *.json
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise data_error(str(path), "expected a JSON array of objects (or an object with a 'data' array)")
    records = []
    for i, row in enumerate(data):
        origin = f"{path} item {i}"
        if not isinstance(row, dict):
            raise data_error(origin, f"expected a JSON object, got {type(row).__name__}")
        records.append(Record(row, origin))
    return records


def read_delimited(path: Path, delimiter: str) -> list[Record]:
    """Rows of a CSV/TSV file with a header line (standard quoting); cells stay strings."""
    records = []
    csv.field_size_limit(CSV_FIELD_LIMIT)
    with open_text(path, newline="") as fh:
        reader = csv.DictReader(fh, delimiter=delimiter)
        try:
            for row in reader:
                origin = f"{path} line {reader.line_num}"
                if None in row:
                    raise data_error(origin, f"more cells than the {len(reader.fieldnames or [])} header columns")
                records.append(Record(dict(row), origin))
        except csv.Error as error:  # raised before the line it is about is counted
            raise data_error(f"{path} line {reader.line_num + 1}", f"not valid {'TSV' if delimiter == chr(9) else 'CSV'}: {error}") from None
    return records


def read_parquet(path: Path) -> list[Record]:
    """Rows of a Parquet file (needs pyarrow, which ``datasets`` installs)."""
    import pyarrow.parquet as pq

    rows = pq.read_table(path).to_pylist()
    return [Record(row, f"{path} row {i}") for i, row in enumerate(rows)]


READERS = {
    ".jsonl": read_jsonl,
    ".json": read_json,
    ".tsv": lambda path: read_delimited(path, "\t"),
    ".csv": lambda path: read_delimited(path, ","),
    ".parquet": read_parquet,
}


def read_table_file(path: str | Path) -> list[Record]:
    """Rows of a jsonl/json/tsv/csv/parquet file, chosen by its extension."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"data file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in READERS:
        raise ValueError(f"{path}: unsupported file type {suffix!r}; use .jsonl, .json, .tsv, .csv or .parquet")
    records = READERS[suffix](path)
    if not records:
        raise data_error(str(path), "no rows: the file is empty")
    return records


def read_lines(path: Path) -> list[str]:
    """Non-empty, right-stripped lines of a small label file (``*.lst``, ``*.gold.txt``)."""
    with open_text(path) as fh:
        return [line.rstrip("\r\n") for line in fh if line.strip()]


def iter_tsv_raw(path: Path, *, header: bool) -> Iterator[tuple[list[str], list[str] | None, str]]:
    """Cells of a raw tab-separated file read with ``csv.QUOTE_NONE`` (GLUE layout).

    Yields ``(cells, header_cells, origin)``; a UTF-8 BOM is dropped.
    """
    csv.field_size_limit(CSV_FIELD_LIMIT)
    with open_text(path, newline="") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        head = next(reader, None) if header else None
        for cells in reader:
            if not cells:
                continue
            yield cells, head, f"{path} line {reader.line_num}"
