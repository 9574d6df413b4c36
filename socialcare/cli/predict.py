"""`socialcare predict`: batch prediction over a JSONL file, streaming, in bounded memory."""

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from socialcare.core.options import option
from socialcare.core.records import DataError, read_file
from socialcare.core.schema import IncomingPost
from socialcare.runtime.predictor import Predictor
from socialcare.runtime.registry import model_path


@dataclass
class PredictOptions:
    """Classify every post of a JSONL file (only "text" is required; "id" and "lang" are
    used when present) with a registered model; write one prediction a line."""

    input: Path = option(help="JSONL file of posts")
    output: Path = option(help="JSONL file of predictions (written atomically)")
    model: str | None = option(None, help="registered tag or model directory (default: latest)")
    batch_size: int = option(256, help="posts read and classified at a time")


def load_predictor(model: str | None) -> tuple[str, Predictor]:
    """A model directory given as a path, else the registered tag (or the latest)."""
    if model is not None and Path(model).is_dir():
        return str(model), Predictor(Path(model))
    tag, directory = model_path(model)
    return tag, Predictor(directory)


def _check_input(path: Path) -> int:
    """First pass: every line must be a valid post, so no run stops half-way. Returns the count."""
    problems, count = [], 0
    for _, parsed in read_file(path, IncomingPost):
        if isinstance(parsed, list):
            problems.extend(parsed)
        else:
            count += 1
    if problems:
        raise DataError(problems)
    return count


def _batches(path: Path, size: int) -> Iterator[list[tuple[int, IncomingPost]]]:
    batch = []
    for line_no, post in read_file(path, IncomingPost):
        batch.append((line_no, post))
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def run_predict(opts: PredictOptions) -> int:
    from tqdm.auto import tqdm

    if not opts.input.is_file():
        print(f"socialcare predict: {opts.input}: no such file", file=sys.stderr)
        return 1
    total = _check_input(opts.input)
    tag, predictor = load_predictor(opts.model)
    opts.output.parent.mkdir(parents=True, exist_ok=True)
    partial = opts.output.with_name(opts.output.name + ".partial")
    with partial.open("w", encoding="utf-8") as out, tqdm(total=total, unit="post") as bar:
        for batch in _batches(opts.input, opts.batch_size):
            posts = [post for _, post in batch]
            predictions = predictor.predict([p.text for p in posts], [p.lang for p in posts])
            for i, (line_no, post) in enumerate(batch):
                record = {
                    "id": post.id if post.id is not None else f"line-{line_no}",
                    "lang": post.lang,
                    **predictions.record(i),
                }
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
            bar.update(len(batch))
    partial.replace(opts.output)
    print(f"{total} predictions by {tag} written to {opts.output}")
    return 0
