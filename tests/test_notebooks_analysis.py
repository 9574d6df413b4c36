"""The analysis notebooks run top to bottom headless, with small built-in examples."""

from pathlib import Path

import pytest

from socialcare.cli import main
from socialcare.core import paths
from socialcare.core.records import load_posts, write_posts

NOTEBOOKS = paths.REPO_ROOT / "notebooks"


def outputs(notebook, kind: str) -> list:
    """Every output of the executed notebook's code cells that carries ``kind`` data."""
    return [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if kind in output.get("data", {})
    ]


def printed(notebook) -> str:
    return "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )


@pytest.fixture(scope="module")
def seed_sample(tmp_path_factory) -> Path:
    """A quarter of the seed training posts, both languages."""
    path = tmp_path_factory.mktemp("sample") / "train-quarter.jsonl"
    write_posts(path, load_posts([paths.seed_split("train")])[::4])
    return path


@pytest.fixture(scope="module")
def two_models(tmp_path_factory, seed_sample) -> tuple[Path, Path]:
    """Two baselines trained in seconds on different amounts of data (not registered)."""
    root = tmp_path_factory.mktemp("notebook-models")
    smaller = root / "train-twelfth.jsonl"
    write_posts(smaller, load_posts([paths.seed_split("train")])[::12])
    made = []
    for name, train in (("quarter", seed_sample), ("twelfth", smaller)):
        output = root / name
        args = ["train", "--kind", "baseline", "--train", str(train), "--output", str(output)]
        assert main([*args, "--no-register", "--no-labelled-rounds"]) == 0
        made.append(output)
    return made[0], made[1]


def test_label_quality_notebook_runs_headless(run_notebook, seed_sample):
    notebook = run_notebook(
        NOTEBOOKS / "label_quality.ipynb",
        env={"SOCIALCARE_LQ_DATA": str(seed_sample), "SOCIALCARE_LQ_FOLDS": "3"},
    )
    text = printed(notebook)
    # The shipped double-labelled passes: every post both passes labelled.
    from socialcare.core import paths
    from socialcare.core.records import load_posts

    twice = {p.id for p in load_posts(paths.FIRST_PASSES)} & {
        p.id for p in load_posts(paths.SECOND_PASSES)
    }
    assert f"{len(twice)} posts labelled more than once" in text
    assert "suspect labels on" in text
    assert len(outputs(notebook, "image/png")) == 2  # agreement, flagged labels
    tables = "".join(o["data"]["text/html"] for o in outputs(notebook, "text/html"))
    assert "unanimous" in tables  # the posts to adjudicate
    assert "model_prob" in tables and "suggested" in tables  # the review list


def test_error_analysis_notebook_runs_headless(run_notebook, two_models):
    first, second = two_models
    notebook = run_notebook(
        NOTEBOOKS / "error_analysis.ipynb",
        env={"SOCIALCARE_MODEL": str(first), "SOCIALCARE_OTHER_MODEL": str(second)},
    )
    text = printed(notebook)
    assert f"model: {first}" in text and f"compared with: {second}" in text
    # F1 by language, intent confusion, mistakes per intent, sentiment confusion,
    # calibration, the comparison, and the second model's calibration.
    assert len(outputs(notebook, "image/png")) == 7
    tables = "".join(o["data"]["text/html"] for o in outputs(notebook, "text/html"))
    assert "confidence" in tables and "predicted labels" in tables  # the worst mistakes
