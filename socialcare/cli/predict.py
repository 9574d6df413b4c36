"""`socialcare predict`: batch prediction over a JSONL file, streaming, in bounded memory;
`socialcare spark-predict`: the same answers computed on Spark, for files too big for one
machine."""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from socialcare.core.options import option
from socialcare.core.records import DataError, line_id, read_file
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
                record["id"] = answer.id if answer.id is not None else line_id(line_no)
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
            bar.update(len(batch))
    partial.replace(opts.output)
    print(f"{total} predictions by {predictor.tag} written to {opts.output}")
    return 0


# A verb of its own rather than `predict --engine spark`: its input is a URI Spark reads, its
# output a folder of part files, and it takes Spark's options; the answers come from the
# same classify_posts, in the same records.
@dataclass
class SparkPredictOptions:
    """Classify every post of a JSONL file on Spark, on this machine's cores (--master
    local[N]) or a cluster's (spark-submit): the predictions `socialcare predict` writes,
    one a line, in input order, in the part files of the output folder. The model directory
    is read at its path in local mode and sent with the job otherwise (--ship-model)."""

    input: str = option(help="JSONL file of posts: a path or a URI Spark reads (hdfs://...)")
    output: str = option(
        help="folder for the predictions (JSONL part files, in input order); replaced if it exists"
    )
    model: str | None = option(
        None,
        help="production, latest, a registered tag or a model directory "
        "(default: production, else latest)",
    )
    master: str | None = option(
        None, help="Spark master, e.g. local[2] (default: spark-submit's, else local[*])"
    )
    ship_model: bool | None = option(
        None,
        help="send the model directory to the executors with the job "
        "(default: only when the master is not local)",
    )
    batch_size: int = option(256, help="posts classified at a time by each Spark task")


def run_spark_predict(opts: SparkPredictOptions) -> int:
    from socialcare.runtime.resolver import resolve_model
    from socialcare.runtime.spark_batch import read_posts, score_dataframe, spark_session

    ref = resolve_model(opts.model)
    with spark_session(opts.master) as spark:
        posts = read_posts(spark, opts.input)
        answers = score_dataframe(posts, ref.directory, opts.batch_size, opts.ship_model)
        # Null fields kept ("lang": null), as `socialcare predict` writes them.
        answers.write.mode("overwrite").option("ignoreNullFields", "false").json(opts.output)
    print(f"predictions by {ref.tag} written to {opts.output}")
    return 0
