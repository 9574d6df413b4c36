"""The Spark path gives the answers `socialcare predict` gives: same posts, same order, same
ids, labels and sentiment, the same probabilities (Spark local mode, the tiny baseline)."""

import json
import os
import shutil
from pathlib import Path

import pytest

from socialcare.cli import main
from socialcare.core import paths

pytest.importorskip("pyspark", reason="pyspark is not installed (the spark extra)")
pytestmark = [
    pytest.mark.skipif(
        not (os.environ.get("JAVA_HOME") or shutil.which("java")),
        reason="Spark needs Java 17 or newer: no java on PATH and no JAVA_HOME",
    ),
    # pyspark 4.3 warns that pandas 3 is not fully supported; what we use of it is, as the
    # tests below check.
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
]

# Small and quiet: two cores, no web UI, few shuffle partitions.
SPARK_CONFIG = {
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
}


@pytest.fixture(scope="module")
def spark():
    """One local Spark session for the module; the CLI uses it rather than starting its own."""
    from socialcare.runtime.spark_batch import spark_session

    with spark_session("local[2]", SPARK_CONFIG) as session:
        yield session


@pytest.fixture(scope="module")
def posts_file(tmp_path_factory) -> Path:
    """300 seed posts as a client would send them: every third without an id (named by its
    line), every other without a language (detected), replies with their parent, and blank
    lines that still count in line numbers."""
    path = tmp_path_factory.mktemp("spark-posts") / "posts.jsonl"
    lines = paths.seed_split("test").read_text(encoding="utf-8").splitlines()[:300]
    with path.open("w", encoding="utf-8") as out:
        for i, line in enumerate(lines):
            record = json.loads(line)
            if i % 3 == 0:
                del record["id"]
            if i % 2 == 0:
                del record["lang"]
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            if i % 50 == 7:
                out.write("\n")
    return path


def read_spark_output(folder: Path) -> list[dict]:
    """The records of Spark's part files, in part order (Spark's input order)."""
    parts = sorted(folder.glob("part-*.json"))
    assert parts, f"no part files in {folder}"
    return [json.loads(line) for part in parts for line in part.read_text().splitlines()]


def assert_same_answers(got: list[dict], expected: list[dict]) -> None:
    assert [r["id"] for r in got] == [r["id"] for r in expected]
    for mine, theirs in zip(got, expected, strict=True):
        assert list(mine) == list(theirs), mine["id"]  # same fields, same order
        assert mine["lang"] == theirs["lang"], mine["id"]
        assert mine["labels"] == theirs["labels"], mine["id"]
        assert mine["sentiment"]["label"] == theirs["sentiment"]["label"], mine["id"]
        assert mine["intents"] == pytest.approx(theirs["intents"], abs=1e-6), mine["id"]
        scores = mine["sentiment"]["scores"]
        assert scores == pytest.approx(theirs["sentiment"]["scores"], abs=1e-6), mine["id"]


def test_spark_predict_answers_as_socialcare_predict(
    spark, registered_baseline, posts_file, tmp_path
):
    tag, _ = registered_baseline
    expected_file, spark_folder = tmp_path / "predict.jsonl", tmp_path / "spark"
    assert (
        main(
            ["predict", "--input", str(posts_file), "--output", str(expected_file), "--model", tag]
        )
        == 0
    )
    args = ["--input", str(posts_file), "--output", str(spark_folder), "--model", tag]
    assert main(["spark-predict", *args]) == 0
    expected = [json.loads(line) for line in expected_file.read_text().splitlines()]
    got = read_spark_output(spark_folder)
    assert len(got) == 300
    assert sum(r["id"].startswith("line-") for r in got) == 100
    assert_same_answers(got, expected)


def test_score_dataframe_with_the_model_shipped(spark, registered_baseline, posts_file):
    """Another job's DataFrame (only text and id; other columns ignored), the model sent to
    the executors as an archive as on a cluster: the same answers as classify_posts."""
    from socialcare.core.records import read_file
    from socialcare.core.schema import IncomingPost
    from socialcare.runtime.classify import classify_posts
    from socialcare.runtime.resolver import load_predictor
    from socialcare.runtime.spark_batch import score_dataframe

    tag, _ = registered_baseline
    posts = [post for _, post in read_file(posts_file, IncomingPost) if post.id is not None]
    posts = [post.model_copy(update={"lang": None}) for post in posts[:120]]
    rows = [(post.text, post.id, "facebook") for post in posts]
    df = spark.createDataFrame(rows, "text string, id string, channel string").repartition(3)
    answers = score_dataframe(df, tag, ship_model=True).collect()
    by_id = {row.id: row.asDict(recursive=True) for row in answers}
    assert len(by_id) == len(answers) == 120

    direct = classify_posts(load_predictor(tag), posts)
    expected = [answer.public().model_dump(mode="json") for answer in direct]
    assert_same_answers([by_id[answer["id"]] for answer in expected], expected)
    archives = spark.sparkContext.listArchives
    assert any("socialcare-model-" in uri for uri in archives), archives


def test_bad_input_stops_the_run_before_any_scoring(spark, registered_baseline, tmp_path, capsys):
    posts = tmp_path / "posts.jsonl"
    posts.write_text('{"text": "Hej!"}\n\n{"text": "   "}\nnot json\n', encoding="utf-8")
    output = tmp_path / "out"
    args = ["--input", str(posts), "--output", str(output), "--model", registered_baseline[0]]
    assert main(["spark-predict", *args]) == 1
    assert not output.exists()
    err = capsys.readouterr().err
    assert f"{posts}:3: text:" in err and f"{posts}:4: line: not valid JSON" in err, err

    missing = tmp_path / "missing.jsonl"
    args = ["--input", str(missing), "--output", str(output), "--model", registered_baseline[0]]
    assert main(["spark-predict", *args]) == 1
    assert f"{missing}: no such file" in capsys.readouterr().err
