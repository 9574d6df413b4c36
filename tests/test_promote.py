"""Retraining with labelled rounds and the promotion gate (socialcare promote)."""

import json
import logging
from pathlib import Path

import pytest

from socialcare.cli import main
from socialcare.core import paths
from socialcare.core.label_store import append_label, make_label, round_path
from socialcare.core.labels import INTENTS
from socialcare.core.records import load_posts, write_posts
from socialcare.runtime import registry
from socialcare.runtime.resolver import resolve_model
from training.config import TrainOptions
from training.promote import compare, gate_scores


@pytest.fixture(scope="module")
def rounds(tmp_path_factory) -> Path:
    """Two reviewers' rounds: new posts, a correction, and a relabelled test post."""
    directory = tmp_path_factory.mktemp("labelled")
    test_post = load_posts([paths.seed_split("test")])[0]

    def save(number, post_id, text, labels, sentiment, annotator):
        record = make_label(post_id, text, "sv", labels, sentiment, annotator, "review-queue")
        append_label(round_path(number, directory), record)

    text = "Tack för snabb hjälp med vattenskadan, men när kommer pengarna?"
    save(1, "live-1", text, ["praise"], "positive", "anna")
    save(1, "live-1", text, ["praise", "question"], "positive", "bo")
    save(2, "live-1", text, ["praise", "question"], "positive", "anna")  # anna's correction
    save(2, test_post.id, test_post.text, ["complaint"], "negative", "anna")
    return directory


@pytest.fixture(scope="module")
def models(tmp_path_factory, rounds) -> dict[str, Path]:
    """A baseline trained on all the training data (and the rounds), one on a tenth of it."""
    root = tmp_path_factory.mktemp("promote-models")
    tenth = root / "train-tenth.jsonl"
    write_posts(tenth, load_posts([paths.seed_split("train")])[::10])
    common = ["train", "--kind", "baseline", "--no-register"]
    strong = ["--output", str(root / "strong"), "--labelled-dir", str(rounds)]
    weak = ["--output", str(root / "weak"), "--train", str(tenth), "--no-labelled-rounds"]
    assert main([*common, *strong]) == 0
    assert main([*common, *weak]) == 0
    return {"strong": root / "strong", "weak": root / "weak"}


def register(directory: Path, name: str) -> str:
    """Register a trained model directory as `socialcare train` does."""
    info = json.loads((directory / "socialcare.json").read_text())
    return registry.register(directory, {"kind": "baseline"}, info["provenance"], name=name)


def stage(tag: str) -> str:
    return registry.stage_of(registry.get_model(tag))


def log_entries(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_training_takes_the_latest_label_per_post_and_annotator(rounds):
    opts = TrainOptions(labelled_dir=rounds)
    files = opts.train_files()
    assert files == [paths.seed_split("train"), round_path(1, rounds), round_path(2, rounds)]
    posts = opts.train_posts()
    live = [p for p in posts if p.id == "live-1"]
    assert sorted((p.annotator, tuple(p.labels)) for p in live) == [
        ("anna", ("praise", "question")),  # the correction replaced her first label
        ("bo", ("praise", "question")),
    ]
    # The relabelled test post stays out of training; the seed training posts are all in.
    test_ids = {p.id for p in load_posts([paths.seed_split("test")])}
    assert not test_ids & {p.id for p in posts}
    assert len(posts) == len(load_posts([paths.seed_split("train")])) + 2

    without = TrainOptions(labelled_dir=rounds, labelled_rounds=False)
    assert without.train_files() == [paths.seed_split("train")]
    assert "live-1" not in {p.id for p in without.train_posts()}


def test_a_reviewed_label_supersedes_the_training_label_of_the_same_post(tmp_path):
    seed_post = load_posts([paths.seed_split("train")])[0]
    corrected = [] if seed_post.labels else ["complaint"]
    record = make_label(
        seed_post.id, seed_post.text, seed_post.lang, corrected, "neutral", "anna", "review-queue"
    )
    append_label(round_path(1, tmp_path), record)
    posts = TrainOptions(labelled_dir=tmp_path).train_posts()
    same = [p for p in posts if p.id == seed_post.id]
    assert [(p.annotator, p.labels, p.sentiment) for p in same] == [("anna", corrected, "neutral")]
    assert len(posts) == len(load_posts([paths.seed_split("train")]))  # replaced, not added


def test_a_trained_model_records_the_rounds_it_learnt_from(models, rounds):
    info = json.loads((models["strong"] / "socialcare.json").read_text())
    assert str(round_path(2, rounds)) in info["provenance"]["train_files"]
    assert info["provenance"]["options"]["labelled_rounds"] is True


def test_promotes_a_better_model_and_archives_the_old_one(models, tmp_path, capsys):
    log = tmp_path / "promotions.jsonl"
    weak = register(models["weak"], "gate-better")
    strong = register(models["strong"], "gate-better")

    # No model in production yet: the first candidate goes in without a comparison.
    assert main(["promote", weak, "--log", str(log)]) == 0
    assert stage(weak) == "production"
    assert main(["promote", strong, "--log", str(log)]) == 0
    assert (stage(strong), stage(weak)) == ("production", "archived")
    assert f"{strong} is now production; {weak} archived" in capsys.readouterr().out

    first, second = log_entries(log)
    assert (first["decision"], first["reference"], first["checks"]) == ("promoted", None, [])
    assert second["decision"] == "promoted" and second["reference"] == weak
    assert second["archived"] == weak
    assert {c["score"] for c in second["checks"]} == set(second["candidate_scores"])
    assert all(c["passed"] and c["drop"] < 0 for c in second["checks"])  # better everywhere
    assert second["data"] == [str(paths.seed_split("test"))]
    stored = registry.stage_record(registry.get_model(strong))["promotion"]
    assert stored["decision"] == "promoted" and stored["reference"] == weak


def test_refuses_a_worse_model_and_says_which_scores(models, tmp_path, capsys):
    log = tmp_path / "promotions.jsonl"
    strong = register(models["strong"], "gate-worse")
    weak = register(models["weak"], "gate-worse")
    assert main(["promote", strong, "--log", str(log)]) == 0
    capsys.readouterr()

    assert main(["promote", weak, "--log", str(log), "--tolerance", "2.5"]) == 1
    out = capsys.readouterr().out
    assert (stage(strong), stage(weak)) == ("production", "candidate")
    refused = log_entries(log)[-1]
    assert refused["decision"] == "refused" and refused["tolerance_points"] == 2.5
    worse = [c for c in refused["checks"] if not c["passed"]]
    assert worse and all(c["drop"] > 2.5 for c in worse)
    for check in worse:
        assert check["score"] in refused["reason"]
        assert check["drop"] == pytest.approx(100 * (check["reference"] - check["candidate"]))
    assert f"refused: {weak}" in out
    assert registry.stage_record(registry.get_model(weak))["promotion"]["decision"] == "refused"


def test_default_model_is_production_else_newest_and_says_which(models, caplog):
    older = register(models["weak"], "gate-default")
    newer = register(models["weak"], "gate-default")
    with caplog.at_level(logging.INFO, logger="socialcare.runtime.resolver"):
        assert resolve_model(None, "gate-default").tag == newer
        assert "no gate-default model is in production" in caplog.text
        registry.mark_production(older)
        caplog.clear()
        assert resolve_model(None, "gate-default").tag == older
        assert f"using the production model {older}" in caplog.text
    assert resolve_model("production", "gate-default").tag == older
    assert resolve_model("latest", "gate-default").tag == newer
    assert resolve_model("gate-default:latest").tag == newer
    assert resolve_model(older).tag == older


def test_promote_refuses_data_the_models_learnt_from(models, capsys):
    candidate = register(models["strong"], "gate-data")
    validation = str(paths.seed_split("validation"))
    assert main(["promote", candidate, "--data", validation]) == 1
    assert "trained or calibrated on" in capsys.readouterr().err
    assert stage(candidate) == "candidate"


def _metrics(value: float, n: int = 100, sv_sentiment: float | None = 0.7) -> dict:
    def subset(sentiment):
        return {
            "intents": {intent: {"f1": value} for intent in INTENTS},
            "intent_macro_f1": value,
            "sentiment": {"macro_f1": sentiment},
        }

    return {"n_posts": n, "overall": subset(0.7), "by_lang": {"sv": subset(sv_sentiment)}}


def test_gate_tolerance_is_in_f1_points_and_unscored_subsets_do_not_block():
    reference = _metrics(0.80)
    names = set(gate_scores(reference))
    assert names == {f"intent F1 {i}" for i in INTENTS} | {
        f"{head} macro-F1 {lang}" for head in ("intent", "sentiment") for lang in ("all", "sv")
    }
    at_limit = compare(_metrics(0.79), reference, tolerance=1.0)
    assert all(c.passed for c in at_limit)
    assert {round(c.drop, 6) for c in at_limit if c.score.startswith("intent")} == {1.0}
    beyond = compare(_metrics(0.789), reference, tolerance=1.0)
    assert {c.score for c in beyond if not c.passed} == names - {
        "sentiment macro-F1 all",
        "sentiment macro-F1 sv",
    }
    unscored = compare(_metrics(0.80, sv_sentiment=None), reference, tolerance=1.0)
    check = next(c for c in unscored if c.score == "sentiment macro-F1 sv")
    assert check.passed and check.drop is None
    with pytest.raises(ValueError, match="different data"):
        compare(_metrics(0.8, n=99), reference, tolerance=1.0)


def test_reviewed_posts_weigh_more_and_a_share_is_held_out_for_the_decision(tmp_path, monkeypatch):
    seed = load_posts([paths.seed_split("train")])
    for post in seed[:40]:  # reviewers confirm 40 training posts
        record = make_label(
            post.id, post.text, post.lang, post.labels or [], post.sentiment, "anna", "queue"
        )
        append_label(round_path(1, tmp_path), record)
    data = TrainOptions(labelled_dir=tmp_path, reviewed_weight=4.0).training_data()
    held = {p.id for p in data.reviewed_held_out}
    trained = {p.id: w for p, w in zip(data.posts, data.weights, strict=True)}
    assert 0 < len(held) < 40  # about a quarter, the same posts for every model
    assert held == {
        p.id for p in TrainOptions(labelled_dir=tmp_path).training_data().reviewed_held_out
    }
    assert not held & set(trained)
    assert all(trained[p.id] == 4.0 for p in seed[:40] if p.id not in held)
    assert all(trained[p.id] == 1.0 for p in seed[40:])
    assert len(data.posts) == len(seed) - len(held)
    assert {p.id for p, r in zip(data.posts, data.reviewed_rows, strict=True) if r} == (
        {p.id for p in seed[:40]} - held
    )

    # Training fits the decision on validation plus the held-out reviewed posts, and
    # scores them apart.
    from training import runtimes

    fitted_on = []

    def fit_decision(intent_logits, sentiment_logits, labelled, rule):
        fitted_on.append(len(labelled.texts))
        return real_fit_decision(intent_logits, sentiment_logits, labelled, rule)

    real_fit_decision = runtimes.fit_decision
    monkeypatch.setattr(runtimes, "fit_decision", fit_decision)
    output = tmp_path / "model"
    args = ["train", "--kind", "baseline", "--no-register", "--labelled-dir", str(tmp_path)]
    assert main([*args, "--output", str(output), "--reviewed-weight", "4"]) == 0
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["reviewed"]["n_posts"] == len(held)
    validation = len(load_posts([paths.seed_split("validation")]))
    assert fitted_on == [validation + len(held)]


def test_the_gate_also_scores_the_reviewed_posts_the_candidate_did_not_learn(tmp_path, capsys):
    seed = load_posts([paths.seed_split("train")])
    for post in seed[:60]:
        record = make_label(
            post.id, post.text, post.lang, post.labels or [], post.sentiment, "anna", "queue"
        )
        append_label(round_path(1, tmp_path), record)
    common = ["train", "--kind", "baseline", "--name", "gate-reviewed"]
    assert main([*common, "--output", str(tmp_path / "old"), "--no-labelled-rounds"]) == 0
    assert main([*common, "--output", str(tmp_path / "new"), "--labelled-dir", str(tmp_path)]) == 0
    old, new = (str(m.tag) for m in sorted(registry.list_models("gate-reviewed"),
                                           key=lambda m: m.info.creation_time))  # fmt: skip
    log = tmp_path / "promotions.jsonl"
    main(["promote", new, "--against", old, "--log", str(log), "--tolerance", "100"])
    entry = log_entries(log)[-1]
    held = json.loads((tmp_path / "new" / "socialcare.json").read_text())["provenance"][
        "reviewed_held_out"
    ]
    assert entry["reviewed_posts"] == len(held) > 0
    reviewed_checks = [c for c in entry["checks"] if c["score"].startswith("reviewed posts: ")]
    test_checks = [c for c in entry["checks"] if not c["score"].startswith("reviewed posts: ")]
    assert reviewed_checks and test_checks  # both sets are gated
    assert "reviewed posts: intent macro-F1 all" in capsys.readouterr().out


def test_the_reviewed_share_sets_how_much_the_new_page_weighs_in_the_decision():
    from socialcare.core.arrays import encode_posts
    from training.runtimes import REVIEWED, VALIDATION, decision_rows

    posts = load_posts([paths.seed_split("validation")])
    splits = {VALIDATION: encode_posts(posts[:300]), REVIEWED: encode_posts(posts[300:330])}
    assert {s: len(r) for s, r in decision_rows(splits).items()} == {VALIDATION: 300, REVIEWED: 30}
    half = decision_rows(splits, 0.5)
    assert len(half[REVIEWED]) == 300 and set(half[REVIEWED]) == set(range(30))
    quarter = decision_rows(splits, 0.25)
    assert len(quarter[REVIEWED]) == 90  # 90 of 390: about a quarter
    assert list(decision_rows(splits, 1.0)) == [REVIEWED]
    assert list(decision_rows({VALIDATION: splits[VALIDATION]}, 1.0)) == [VALIDATION]
    with pytest.raises(ValueError, match="reviewed share"):
        decision_rows(splits, 0)
