"""`socialcare promote`: the gate between a newly trained model and production.

A candidate goes into production only if, on the same held-out posts and with the same
evaluation code, none of its scores (F1 of each intent, intent and sentiment macro-F1
overall and per language) is worse than the production model's by more than a tolerance.
Every decision, either way, is appended with its numbers to ``artifacts/promotions.jsonl``
and stored in the candidate's registry metadata.
"""

import dataclasses
import fcntl
import json
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from socialcare.core import paths
from socialcare.core.labels import INTENTS
from socialcare.core.options import option
from socialcare.core.records import write_posts
from socialcare.runtime.predictor import Predictor
from socialcare.runtime.registry import (
    PRODUCTION,
    STAGE_FILE,
    get_model,
    mark_production,
    production_model,
    set_stage,
    stage_of,
)

PROMOTIONS_LOG = paths.ARTIFACTS_DIR / "promotions.jsonl"
PROMOTED, REFUSED = "promoted", "refused"


@dataclass
class PromoteOptions:
    """Compare a registered candidate with the production model on the same held-out posts
    (F1 per intent; intent and sentiment macro-F1 overall and per language) and put it in
    production only if no score is worse beyond the tolerance. Exits 0 when promoted, 1 when
    refused; the decision and its numbers are recorded either way.
    """

    candidate: str = option(help="registered tag of the candidate model", positional=True)
    against: str | None = option(
        None, help="registered tag to compare with (default: the production model)"
    )
    data: list[Path] = option(
        [paths.seed_split("test")], help="held-out labelled JSONL files or folders"
    )
    tolerance: float = option(
        1.0, help="largest drop allowed in any score, in F1 points (1.0 = 0.01 F1)"
    )
    log: Path = option(PROMOTIONS_LOG, help="append-only JSONL record of promotion decisions")


@dataclass(frozen=True)
class Check:
    """One score of the gate: the candidate's, the reference's, and the drop in F1 points."""

    score: str
    candidate: float | None
    reference: float | None
    drop: float | None  # (reference - candidate) * 100; positive when the candidate is worse
    passed: bool


def gate_scores(metrics: dict) -> dict[str, float | None]:
    """The scores the gate compares, by name, from what ``evaluation.evaluate`` returned."""
    overall = metrics["overall"]
    scores: dict[str, float | None] = {
        f"intent F1 {intent}": overall["intents"][intent]["f1"] for intent in INTENTS
    }
    for lang, subset in {"all": overall, **metrics["by_lang"]}.items():
        scores[f"intent macro-F1 {lang}"] = subset["intent_macro_f1"]
        scores[f"sentiment macro-F1 {lang}"] = subset["sentiment"]["macro_f1"]
    return scores


def compare(candidate: dict, reference: dict, tolerance: float) -> list[Check]:
    """Check each gate score of the candidate against the reference's.

    Both ``metrics`` must come from the same posts. A score that one side lacks (a subset
    without labels) cannot be compared and does not block.
    """
    if candidate["n_posts"] != reference["n_posts"]:
        raise ValueError(
            f"the two models were scored on different data ({candidate['n_posts']} and "
            f"{reference['n_posts']} posts); score both on the same files"
        )
    ours, theirs = gate_scores(candidate), gate_scores(reference)
    checks = []
    for name, value in ours.items():
        other = theirs.get(name)
        if value is None or other is None:
            checks.append(Check(name, value, other, None, True))
            continue
        drop = 100.0 * (other - value)
        # A hair of slack so that a drop of exactly the tolerance passes despite float error.
        checks.append(Check(name, value, other, drop, drop <= tolerance + 1e-9))
    return checks


def _check_held_out(model, data: list[Path]) -> None:
    """Scores on a model's own training or validation files say nothing about new posts."""
    used = {
        Path(p).resolve()
        for key in ("train_files", "validation_files")
        for p in model.info.metadata.get(key, [])
    }
    overlap = sorted(str(p) for p in data if Path(p).resolve() in used)
    if overlap:
        raise ValueError(
            f"{model.tag} was trained or calibrated on {', '.join(overlap)}; "
            "pass held-out files with --data"
        )


def held_out_reviewed(model) -> list:
    """The reviewed posts ``model`` was not trained on (training held them out): their
    latest labels, read again from the round files it was trained with."""
    from socialcare.core.label_store import latest_labels

    metadata = model.info.metadata
    ids = set(metadata.get("reviewed_held_out") or [])
    labelled_dir = metadata.get("options", {}).get("labelled_dir")
    if not ids or not labelled_dir:
        return []
    rounds = [
        Path(p)
        for p in metadata.get("train_files", [])
        if Path(p).exists() and Path(p).resolve().parent == Path(labelled_dir).resolve()
    ]
    return [post for post in latest_labels(rounds) if post.id in ids] if rounds else []


def _format_checks(checks: list[Check], reference_tag: str) -> str:
    def cell(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f}"

    lines = [
        f"| score | candidate | {reference_tag} | drop (points) | ok |",
        "|---|---|---|---|---|",
    ]
    for check in checks:
        drop = "-" if check.drop is None else f"{check.drop:+.1f}"
        lines.append(
            f"| {check.score} | {cell(check.candidate)} | {cell(check.reference)} | {drop} | "
            f"{'yes' if check.passed else 'NO'} |"
        )
    return "\n".join(lines)


def _append(log: Path, entry: dict) -> None:
    with log.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, ensure_ascii=False) + "\n")


def run_promote(opts: PromoteOptions) -> int:
    opts.log.parent.mkdir(parents=True, exist_ok=True)
    with open(opts.log.with_name(opts.log.name + ".lock"), "w") as lock:
        # Two promotions at once would each compare with the same production model and could
        # both go in; promotions recorded in one log take turns.
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _promote(opts)


def _promote(opts: PromoteOptions) -> int:
    from training.report import data_hash, score  # torch and sklearn load only when used

    candidate = get_model(opts.candidate)
    if opts.against is not None:
        reference = get_model(opts.against)
    else:
        reference = production_model(candidate.tag.name)
    if reference is not None and reference.tag == candidate.tag:
        raise ValueError(f"{candidate.tag} is the model it would be compared with")
    for model in (candidate, reference):
        if model is not None:
            _check_held_out(model, opts.data)

    # The usual held-out posts, and the reviewed posts the candidate was not trained on:
    # a model that learns a new page but forgets the old one fails one of the two.
    gate_sets = {"": opts.data}
    with tempfile.TemporaryDirectory(prefix="socialcare-promote-") as scratch:
        reviewed = held_out_reviewed(candidate)
        if reviewed:
            gate_sets["reviewed posts: "] = [Path(scratch) / "reviewed.jsonl"]
            write_posts(gate_sets["reviewed posts: "][0], reviewed)
        predictors = {"candidate": Predictor(Path(candidate.path))}
        if reference is not None:
            predictors["reference"] = Predictor(Path(reference.path))
        scored = {
            (who, prefix): score(predictor, files)
            for who, predictor in predictors.items()
            for prefix, files in gate_sets.items()
        }
    candidate_metrics = scored[("candidate", "")]
    checks: list[Check] = []
    if reference is None:
        decision, reason = PROMOTED, "no model is in production yet"
    else:
        for prefix in gate_sets:
            found = compare(
                scored[("candidate", prefix)], scored[("reference", prefix)], opts.tolerance
            )
            checks += [dataclasses.replace(c, score=prefix + c.score) for c in found]
        worse = [c.score for c in checks if not c.passed]
        decision = REFUSED if worse else PROMOTED
        reason = (
            f"worse than {reference.tag} by more than {opts.tolerance} points on: "
            + ", ".join(worse)
            if worse
            else f"no score worse than {reference.tag} by more than {opts.tolerance} points"
        )
        print(_format_checks(checks, str(reference.tag)))

    entry = {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "candidate": str(candidate.tag),
        "reference": None if reference is None else str(reference.tag),
        "decision": decision,
        "reason": reason,
        "tolerance_points": opts.tolerance,
        "data": [str(p) for p in opts.data],
        "data_sha256": data_hash(opts.data),
        "n_posts": candidate_metrics["n_posts"],
        "reviewed_posts": len(reviewed),
        "candidate_scores": {
            prefix + name: value
            for (who, prefix), metrics in scored.items()
            if who == "candidate"
            for name, value in gate_scores(metrics).items()
        },
        "checks": [asdict(check) for check in checks],
    }
    if decision == PROMOTED:
        entry["archived"] = mark_production(str(candidate.tag), entry)
    else:
        # The stage stays as it was; the refusal and its numbers are recorded with it.
        set_stage(str(candidate.tag), stage_of(candidate), entry)
    _append(opts.log, entry)

    print(f"\n{decision}: {candidate.tag}: {reason}")
    if decision == PROMOTED:
        archived = entry["archived"]
        print(
            f"{candidate.tag} is now {PRODUCTION}" + (f"; {archived} archived" if archived else "")
        )
    print(f"decision recorded in {opts.log} and beside the model ({STAGE_FILE})")
    return 0 if decision == PROMOTED else 1
