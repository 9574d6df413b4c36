"""`socialcare predict`: batch prediction over a JSONL file, streaming, in bounded memory."""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from socialcare.core.options import option
from socialcare.core.records import DataError, read_file
from socialcare.core.schema import IncomingPost


@dataclass
class PredictOptions:
    """Classify every post of a JSONL file (only "text" is required; "id" and "lang" are
    used when present, a missing "lang" is detected) with a registered model; write one
    prediction a line, the same answer `POST /predict` gives for the post."""

    input: Path = option(help="JSONL file of posts")
    output: Path = option(help="JSONL file of predictions (written atomically)")
    model: str | None = option(
        None,
        help="production, latest, a registered tag or a model directory "
        "(default: production, else latest)",
    )
    batch_size: int = option(256, help="posts read and classified at a time")


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

    from socialcare.runtime.classify import classify_posts
    from socialcare.runtime.resolver import load_predictor

    if not opts.input.is_file():
        raise FileNotFoundError(f"{opts.input}: no such file")
    total = _check_input(opts.input)
    predictor = load_predictor(opts.model)
    opts.output.parent.mkdir(parents=True, exist_ok=True)
    partial = opts.output.with_name(opts.output.name + ".partial")
    with partial.open("w", encoding="utf-8") as out, tqdm(total=total, unit="post") as bar:
        for batch in _batches(opts.input, opts.batch_size):
            answers = classify_posts(predictor, [post for _, post in batch])
            for (line_no, _), answer in zip(batch, answers, strict=True):
                record = answer.public().model_dump(mode="json")
                record["id"] = answer.id if answer.id is not None else f"line-{line_no}"
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
            bar.update(len(batch))
    partial.replace(opts.output)
    print(f"{total} predictions by {predictor.tag} written to {opts.output}")
    return 0
