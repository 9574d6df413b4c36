"""Where a benchmark's results go: ``benchmarks/results/<name>.md`` and ``.json``."""

import json
from pathlib import Path


def write_results(stem: Path, markdown: str, data: object) -> None:
    """Print the Markdown table and write it, with its data as JSON, beside ``stem``."""
    print(markdown)
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".md").write_text(markdown, encoding="utf-8")
    stem.with_suffix(".json").write_text(json.dumps(data, indent=1), encoding="utf-8")
