"""The records of a training file (``lmodp finetune --data``): CSV with a header row, or JSONL.

A malformed file is a ``ValueError`` that names the file and the line: a CSV quote left open
(which the lenient reader would have read as one record holding the rest of the file), a JSONL
line that is not JSON or not an object.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any


def csv_records(path: Path) -> list[dict[str, Any]]:
    """The rows of a CSV file with a header row, read strictly."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, strict=True)
        try:
            return list(reader)
        except csv.Error as err:
            raise ValueError(f"{str(path)!r}, line {reader.reader.line_num}: not valid CSV ({err}; is a quote left open?)") from None


def jsonl_records(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file, one a line (blank lines skipped)."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{str(path)!r}, line {number}: not valid JSON ({err.msg} at column {err.colno})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{str(path)!r}, line {number}: each line must hold a JSON object, got {type(record).__name__}")
            rows.append(record)
    return rows
