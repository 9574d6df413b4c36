import json
from pathlib import Path

import pytest


@pytest.fixture
def write_jsonl(tmp_path: Path):
    """Write records (dicts, or raw strings/bytes for broken lines) to a JSONL file in tmp_path."""

    def write(name: str, rows: list) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            for row in rows:
                if isinstance(row, dict):
                    row = json.dumps(row, ensure_ascii=False)
                handle.write(row if isinstance(row, bytes) else row.encode("utf-8"))
                handle.write(b"\n")
        return path

    return write


def post(id: str = "sv-1", text: str = "När får jag besked om min skada?", **fields) -> dict:
    """A valid record; keyword arguments override or add fields (None removes one)."""
    record = {"id": id, "text": text, "lang": "sv", "labels": ["question"], "sentiment": "neutral"}
    record.update(fields)
    return {k: v for k, v in record.items() if v is not None}
