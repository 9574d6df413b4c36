"""Back-scoring on Spark: the one path from posts to answers (`classify_posts`), run by
Spark's Python workers, for files of posts too big for one machine.

Each Python worker loads the model once (Spark reuses its workers from task to task) and
classifies its rows in chunks, so a post gets the answer `socialcare predict` and the
service give it, in the same record. pyspark is imported only when these functions run:
the rest of socialcare works without it (it comes with the ``spark`` extra).
"""

import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache, partial
from pathlib import Path
from typing import TYPE_CHECKING

from socialcare.core.answers import PostAnswer
from socialcare.core.labels import INTENTS, SENTIMENTS
from socialcare.core.records import DataError, empty_file, line_id, parse_file_line
from socialcare.core.schema import IncomingPost
from socialcare.runtime.predictor import INFO_FILE
from socialcare.runtime.resolver import resolve_model

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

    from socialcare.runtime.predictor import Predictor

# The columns score_dataframe reads (only "text" is required, as for `socialcare predict`).
POST_COLUMNS = tuple(IncomingPost.model_fields)
# What score_dataframe answers: the fields, in the order, of a `socialcare predict` line.
ANSWER_SCHEMA = (
    "id string, lang string, labels array<string>, "
    f"intents struct<{', '.join(f'{name}: double' for name in INTENTS)}>, "
    "sentiment struct<label: string, "
    f"scores: struct<{', '.join(f'{name}: double' for name in SENTIMENTS)}>>"
)
DEFAULT_BATCH_SIZE = 256  # posts per classify_posts call, as `socialcare predict` reads them
MAX_PROBLEMS = 100  # problems fetched to the driver when an input file is refused


@contextmanager
def spark_session(
    master: str | None = None, config: dict[str, str] | None = None, app_name: str = "socialcare"
) -> Iterator["SparkSession"]:
    """The active Spark session (a notebook's, spark-submit's), else a new one, stopped on
    leaving (``master``: e.g. ``local[2]``; None keeps spark-submit's, else Spark's default
    ``local[*]``; ``config``: Spark settings for a new session)."""
    # pyspark 4.3 warns that pandas 3 is not fully supported; the pandas UDF
    # path we use is (tests/test_spark_batch.py).
    warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas", FutureWarning)
    try:
        from pyspark.sql import SparkSession
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            "pyspark is not installed; install the spark extra: pip install -e '.[spark]'"
        ) from err
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        raise FileNotFoundError(
            "java: not found (JAVA_HOME unset, no java on PATH); Spark needs Java 17 or newer"
        )
    # Spark starts its Python workers with `python3` from PATH, which lacks our packages
    # when we run in a virtual environment; a cluster sets PYSPARK_PYTHON itself.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    if master is not None:
        builder = builder.master(master)
    for key, value in (config or {}).items():
        builder = builder.config(key, value)
    started = SparkSession.getActiveSession() is None
    spark = builder.getOrCreate()
    try:
        yield spark
    finally:
        if started:
            spark.stop()


def read_posts(spark: "SparkSession", path: str) -> "DataFrame":
    """The posts of one JSONL file (a local path or any URI Spark reads), in file order.

    Checked first as `socialcare predict` checks its input (DataError naming each bad line),
    so that no run stops half-way; a post without an id is named by its line.
    """
    from py4j.protocol import Py4JJavaError

    context = spark.sparkContext
    # Raw bytes, numbered in file order, through read_file's own line parser: the same
    # posts, problems (UTF-8, JSON, schema) and line numbers as `socialcare predict`. At
    # least one split per core: the splits, in file order, are the scoring tasks.
    lines = context.textFile(path, context.defaultParallelism, use_unicode=False)
    try:
        parsed = lines.zipWithIndex().flatMap(partial(_parse_line, path))
        problems = parsed.filter(lambda item: isinstance(item, list)).flatMap(lambda p: p)
        found = problems.take(MAX_PROBLEMS)
    except Py4JJavaError as err:
        if "InvalidInputException" in str(err):  # Hadoop's "Input path does not exist"
            raise FileNotFoundError(f"{path}: no such file") from None
        raise
    if found:
        raise DataError(found)
    posts = parsed.filter(lambda item: not isinstance(item, list))
    if posts.isEmpty():
        raise DataError([empty_file(Path(path))])
    rows = posts.map(lambda post: tuple(getattr(post, name) for name in POST_COLUMNS))
    return spark.createDataFrame(rows, ", ".join(f"{name} string" for name in POST_COLUMNS))


def _parse_line(path: str, item: tuple[bytes, int]) -> list:
    """[] for a blank line, else [the post, its id defaulted to its line] or [its problems]."""
    raw, index = item
    line_no = index + 1
    post = parse_file_line(Path(path), line_no, raw, IncomingPost)
    if post is None:
        return []
    if isinstance(post, IncomingPost) and post.id is None:
        post = post.model_copy(update={"id": line_id(line_no)})
    return [post]


def score_dataframe(
    df: "DataFrame",
    model: str | Path | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    ship_model: bool | None = None,
) -> "DataFrame":
    """The answers for the posts of ``df`` (columns ``text`` and optionally ``id``, ``lang``,
    ``parent_text``; others are ignored), one row per post in their order, with the fields
    of `socialcare predict`'s lines: id, lang, labels, intents, sentiment.

    ``model``: as for `socialcare predict` (default: production, else latest), resolved
    here on the driver. ``ship_model``: send the model directory to the executors with
    the job (``SparkContext.addArchive``) rather than read it at its path there; by
    default shipped unless the master is local, where the executors share this machine.
    """
    ref = resolve_model(model)
    spark = df.sparkSession
    if ship_model is None:
        ship_model = not spark.sparkContext.master.startswith("local")
    archive = _ship(spark, ref.directory) if ship_model else None
    # As strings whatever Spark inferred (a numeric id in JSON reads as a long).
    posts = df.select(
        *(
            df[name].cast("string") if name in df.columns else _null_string(name)
            for name in POST_COLUMNS
        )
    )
    score = partial(
        _score_partition, directory=str(ref.directory), archive=archive, batch_size=batch_size
    )
    return posts.mapInPandas(score, ANSWER_SCHEMA)


def _null_string(name: str):
    from pyspark.sql import functions as F

    return F.lit(None).cast("string").alias(name)


def _ship(spark: "SparkSession", directory: Path) -> str:
    """Add the model directory to the job as an archive; its name on the executors."""
    # Named by the directory and its socialcare.json's time: one archive per model
    # version in the temp folder, reused by later jobs (the driver serves it while a job
    # runs, so it cannot be deleted on return).
    stamp = f"{directory.resolve()}:{(directory / INFO_FILE).stat().st_mtime_ns}"
    name = f"socialcare-model-{hashlib.sha256(stamp.encode()).hexdigest()[:16]}.tar"
    path = Path(tempfile.gettempdir()) / name
    if not path.exists():
        partial_path = path.with_name(f"{name}.{os.getpid()}.partial")
        # Not compressed: model weights barely compress, and packing stays disk speed.
        with tarfile.open(partial_path, "w") as tar:
            for child in sorted(directory.iterdir()):  # no "./" entry: Spark refuses one
                tar.add(child, arcname=child.name)
        partial_path.replace(path)
    context = spark.sparkContext
    if not any(Path(uri).name == name for uri in context.listArchives):
        context.addArchive(str(path))
    return name


def _score_partition(
    batches: Iterator["pd.DataFrame"], directory: str, archive: str | None, batch_size: int
) -> Iterator["pd.DataFrame"]:
    """On an executor: answer each chunk of ``batch_size`` posts through classify_posts."""
    import pandas as pd

    from socialcare.runtime.classify import classify_posts

    predictor = _worker_predictor(_executor_directory(directory, archive), _task_cpus())
    for batch in batches:
        rows = batch.astype(object).where(batch.notna(), None).to_dict("records")
        for start in range(0, len(rows), batch_size):
            posts = [
                IncomingPost.model_validate({k: v for k, v in row.items() if v is not None})
                for row in rows[start : start + batch_size]
            ]
            answers = classify_posts(predictor, posts)
            records = [answer.public().model_dump(mode="json") for answer in answers]
            yield pd.DataFrame.from_records(records, columns=list(PostAnswer.model_fields))


def _executor_directory(directory: str, archive: str | None) -> str:
    if archive is None:
        return directory
    from pyspark import SparkFiles

    return SparkFiles.get(archive)


def _task_cpus() -> int:
    """The cores Spark gave this task (spark.task.cpus): ONNX Runtime's threads, so that
    the concurrent tasks of an executor do not fight over its cores."""
    from pyspark import TaskContext

    context = TaskContext.get()
    return context.cpus() if context is not None else 1


@cache
def _worker_predictor(directory: str, threads: int) -> "Predictor":
    """The model, loaded once per Python worker (the cache outlives tasks, as workers do)."""
    from socialcare.runtime.resolver import load_predictor

    # No spinning: the worker's threads sleep between batches and leave the cores to the
    # executor's other tasks.
    return load_predictor(directory, threads=threads, spinning=False)
