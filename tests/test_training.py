"""Training pieces: masked loss, calibration, thresholds, and the whole chain on a tiny model."""

import json

import numpy as np
import pytest
import torch

from socialcare.cli import main
from socialcare.runtime.model import IGNORE, masked_loss
from socialcare.runtime.predictor import ANY_LANG, Decision, sigmoid
from training.calibration import (
    MIN_POSITIVES_PER_LANGUAGE,
    ThresholdRule,
    best_threshold,
    fit_intent_temperature,
    fit_sentiment_temperature,
    tune_thresholds,
)
from training.config import RECIPE_GRID


def test_posts_missing_a_label_add_no_loss_to_that_head():
    torch.manual_seed(0)
    intent_logits, sentiment_logits = torch.randn(4, 5), torch.randn(4, 3)
    intents = torch.tensor([[1, 0, 0, 0, 0], [0, 1, 0, 0, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0.0]])
    known = torch.tensor([1, 1, 0, 1])  # post 2 has no intent labels (its row is garbage)
    sentiment = torch.tensor([0, IGNORE, 2, 1])  # post 1 has no sentiment
    loss = masked_loss(intent_logits, sentiment_logits, intents, known, sentiment)

    bce = torch.nn.functional.binary_cross_entropy_with_logits
    expected_intent = bce(intent_logits[[0, 1, 3]], intents[[0, 1, 3]])
    expected_sentiment = torch.nn.functional.cross_entropy(
        sentiment_logits[[0, 2, 3]], sentiment[[0, 2, 3]]
    )
    assert loss.item() == pytest.approx((expected_intent + expected_sentiment).item(), rel=1e-6)

    # Changing what masked rows say changes nothing.
    garbage = intents.clone()
    garbage[2] = 0
    other = masked_loss(
        intent_logits, sentiment_logits, garbage, known, torch.tensor([0, IGNORE, 2, 1])
    )
    assert other.item() == pytest.approx(loss.item())


def test_a_post_of_weight_w_counts_as_w_copies_of_itself():
    torch.manual_seed(1)
    intent_logits, sentiment_logits = torch.randn(3, 5), torch.randn(3, 3)
    intents = (torch.rand(3, 5) > 0.5).float()
    known, sentiment = torch.ones(3), torch.tensor([0, 1, 2])
    weighted = masked_loss(
        intent_logits, sentiment_logits, intents, known, sentiment, torch.tensor([1.0, 1.0, 3.0])
    )
    copies = [0, 1, 2, 2, 2]
    repeated = masked_loss(
        intent_logits[copies], sentiment_logits[copies], intents[copies], known[copies],
        sentiment[copies],
    )  # fmt: skip
    assert weighted.item() == pytest.approx(repeated.item(), rel=1e-6)
    plain = masked_loss(intent_logits, sentiment_logits, intents, known, sentiment)
    assert plain.item() == pytest.approx(
        masked_loss(
            intent_logits, sentiment_logits, intents, known, sentiment, torch.ones(3)
        ).item()
    )


def test_a_batch_without_any_sentiment_still_has_a_finite_loss():
    loss = masked_loss(
        torch.zeros(2, 5),
        torch.zeros(2, 3),
        torch.zeros(2, 5),
        torch.ones(2),
        torch.tensor([IGNORE, IGNORE]),
    )
    assert loss.item() == pytest.approx(np.log(2), rel=1e-6)


def test_epochs_are_chosen_on_the_heads_that_have_validation_labels():
    from types import SimpleNamespace

    from training.finetune import selection_metrics

    intent_logits = np.array([[2.0, -2.0], [-2.0, 2.0], [2.0, 2.0], [-2.0, -2.0]])
    sentiment_logits = np.array([[3.0, 0, 0], [0, 3.0, 0], [0, 0, 3.0], [3.0, 0, 0]])
    intents = np.array([[1, 0], [0, 1], [1, 0], [0, 0]])
    # Predicted 0, 1, 2, 0: F1 of class 0 is 2/3, class 1 is 1, class 2 is 2/3; mean 7/9.
    sentiment = np.array([0, 1, 2, 2])
    both = selection_metrics(
        SimpleNamespace(
            predictions=(intent_logits, sentiment_logits),
            label_ids=(intents, np.ones(4), sentiment),
        )
    )
    assert both["sentiment_macro_f1"] == pytest.approx(7 / 9)
    assert both["selection_score"] == pytest.approx(
        (both["intent_macro_f1"] + both["sentiment_macro_f1"]) / 2
    )
    # A sentiment-only corpus: no intent labels at all, the epoch goes by sentiment alone.
    sentiment_only = selection_metrics(
        SimpleNamespace(
            predictions=(intent_logits, sentiment_logits),
            label_ids=(np.full((4, 2), IGNORE), np.zeros(4), sentiment),
        )
    )
    assert "intent_macro_f1" not in sentiment_only
    assert sentiment_only["selection_score"] == pytest.approx(7 / 9)


def test_best_threshold_maximises_f_beta():
    probs = np.array([0.9, 0.8, 0.35, 0.3, 0.2, 0.1])
    truth = np.array([True, True, True, False, False, False])
    # F1: t in (0.30, 0.35] catches all three positives with no false alarm.
    assert 0.30 < best_threshold(probs, truth, beta=1.0) <= 0.35
    # With recall weighted much more (beta 5), a lower threshold that adds false alarms
    # but keeps recall is never worse; it must still catch every positive.
    assert best_threshold(probs, truth, beta=5.0) <= 0.35


def test_false_alarm_limit_keeps_a_weak_intent_from_flagging_the_page():
    rng = np.random.default_rng(3)
    truth = rng.random(2000) < 0.3
    # A weak intent: positives score only a little higher than the rest.
    probs = np.clip(rng.normal(0.25 + 0.1 * truth, 0.1), 0, 1)
    unlimited = best_threshold(probs, truth, beta=2.0, max_false_alarm_rate=None)
    limited = best_threshold(probs, truth, beta=2.0, max_false_alarm_rate=0.15)
    assert np.mean(probs[~truth] >= unlimited) > 0.5  # recall-leaning F-beta floods
    assert np.mean(probs[~truth] >= limited) <= 0.15
    # The limit never lowers a threshold that already kept within it.
    clean = np.where(truth, 0.9, 0.1)
    assert best_threshold(clean, truth, beta=2.0, max_false_alarm_rate=0.15) == best_threshold(
        clean, truth, beta=2.0, max_false_alarm_rate=None
    )


def test_thresholds_per_language_fall_back_to_pooled_when_data_is_thin():
    rng = np.random.default_rng(0)
    n = 200
    langs = ["sv"] * n + ["it"] * 10
    labels = np.zeros((n + 10, 5), dtype=int)
    labels[:, 0] = rng.random(n + 10) < 0.5
    probs = np.clip(labels * 0.6 + rng.random((n + 10, 5)) * 0.4, 0, 1)
    table = tune_thresholds(probs, labels, langs, ThresholdRule(per_language=True))
    assert set(table) == {ANY_LANG, "sv", "it"}
    assert labels[n:, 0].sum() < MIN_POSITIVES_PER_LANGUAGE
    assert table["it"]["complaint"] == table[ANY_LANG]["complaint"]
    assert 0.4 <= table["sv"]["complaint"] <= 0.6  # separable at 0.4-0.6


def test_temperature_scaling_undoes_overconfidence():
    rng = np.random.default_rng(1)
    true_logits = rng.normal(0, 2, size=(4000, 5))
    labels = (rng.random((4000, 5)) < sigmoid(true_logits)).astype(float)
    assert fit_intent_temperature(3 * true_logits, labels) == pytest.approx(3, rel=0.1)

    sentiment_logits = rng.normal(0, 2, size=(4000, 3))
    p = np.exp(sentiment_logits) / np.exp(sentiment_logits).sum(1, keepdims=True)
    sentiment = np.array([rng.choice(3, p=row) for row in p])
    assert fit_sentiment_temperature(0.5 * sentiment_logits, sentiment) == pytest.approx(
        0.5, rel=0.1
    )


def test_decision_uses_each_posts_language_thresholds():
    decision = Decision(
        thresholds={
            ANY_LANG: dict.fromkeys(
                ["complaint", "question", "factual_error", "humour", "praise"], 0.5
            ),
            "sv": {
                "complaint": 0.2,
                "question": 0.5,
                "factual_error": 0.5,
                "humour": 0.5,
                "praise": 0.5,
            },
        }
    )
    matrix = decision.threshold_matrix(["sv", "it", None])
    assert matrix[:, 0].tolist() == [0.2, 0.5, 0.5]


def test_train_evaluate_register_predict_on_a_tiny_model(tiny_backbone, tmp_path, capsys):
    """The whole chain in seconds: train → calibrate → evaluate → register → list → predict."""
    model_dir = tmp_path / "model"
    config = tmp_path / "experiment.json"
    config.write_text(
        json.dumps(
            {"epochs": 1, "max_length": 48, "batch_size": 32, "threshold_betas": {"complaint": 3.0}}
        )
    )
    code = main(
        [
            "train",
            "--config",
            str(config),
            "--base-model",
            str(tiny_backbone),
            "--output",
            str(model_dir),
            "--name",
            "tiny-test",
        ]
    )
    assert code == 0
    info = json.loads((model_dir / "socialcare.json").read_text())
    assert info["kind"] == "finetune"
    assert info["provenance"]["options"]["threshold_betas"] == {"complaint": 3.0}
    assert info["provenance"]["options"]["epochs"] == 1  # from the file
    # No --learning-rate: each pair of the grid trained, the better on validation kept.
    rates = info["learning_rates"]
    assert [(t["learning_rate"], t["head_learning_rate"]) for t in rates["tried"]] == list(
        RECIPE_GRID
    )
    assert rates["chosen"] == max(rates["tried"], key=lambda t: t["score"])
    assert len(info["provenance"]["train_data_sha256"]) == 64
    assert set(info["decision"]["thresholds"]) == {"*"}  # pooled by default
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["test"]["n_posts"] > 300
    assert (model_dir / "model_card.md").read_text().count("## Scores on") == 2
    assert (model_dir / "plots" / "calibration.png").stat().st_size > 0

    capsys.readouterr()  # drop the training log
    assert main(["models", "--name", "tiny-test", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed) == 1
    assert listed[0]["labels"]["kind"] == "finetune"
    assert "test_intent_macro_f1" in listed[0]["metrics"]

    posts = tmp_path / "posts.jsonl"
    posts.write_text(
        '{"text": "Tack för snabb hjälp!", "id": "a", "lang": "sv"}\n'
        '{"text": "Quando arriva il rimborso?"}\n',
        encoding="utf-8",
    )
    out = tmp_path / "predictions.jsonl"
    assert (
        main(["predict", "--input", str(posts), "--output", str(out), "--model", str(model_dir)])
        == 0
    )
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["a", "line-2"]
    assert set(rows[0]["intents"]) == {"complaint", "question", "factual_error", "humour", "praise"}
    assert sum(rows[1]["sentiment"]["scores"].values()) == pytest.approx(1.0, abs=1e-5)


def test_a_sentiment_only_corpus_trains_and_exports(tiny_backbone, tmp_path):
    """Public corpora carry sentiment only: the intent head is then masked out of the loss,
    left out of epoch selection and answers "no intent"; the export still checks out."""
    from socialcare.runtime.predictor import Predictor

    files = seed_subset(tmp_path, {"train": 120, "validation": 60, "test": 60}, drop="labels")
    model_dir = tmp_path / "model"
    args = ["train", "--base-model", str(tiny_backbone), "--output", str(model_dir)]
    args += ["--epochs", "1", "--max-length", "32", "--no-register", "--no-labelled-rounds"]
    for split, path in files.items():
        args += [f"--{split}", str(path)]
    assert main(args) == 0
    info = json.loads((model_dir / "socialcare.json").read_text())
    assert info["trained_heads"] == ["sentiment"]
    predictions = Predictor(model_dir).predict(["Grazie mille!", "Varför svarar ingen?"])
    assert not predictions.intent_pred.any()
    np.testing.assert_allclose(predictions.sentiment_prob.sum(axis=1), 1.0, rtol=1e-5)


def seed_subset(tmp_path, sizes: dict[str, int], drop: str | None = None) -> dict:
    """The first posts of each seed split as files (seconds of training), ``drop`` removed
    from every record."""
    from socialcare.core import paths

    files = {}
    for split, size in sizes.items():
        lines = paths.seed_split(split).read_text(encoding="utf-8").splitlines()[:size]
        records = [json.loads(line) for line in lines]
        for record in records:
            record.pop(drop, None)
        files[split] = tmp_path / f"{split}.jsonl"
        files[split].write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return files


@pytest.mark.parametrize("kind", ["finetune", "baseline"])
def test_train_returns_what_it_wrote_and_writes_each_file_once(
    kind, tiny_backbone, tmp_path, monkeypatch
):
    """socialcare.json, metrics.json and model_card.md are each written once, and the
    result says what they say: callers need not read them back."""
    from collections import Counter
    from pathlib import Path

    from training.config import TrainOptions
    from training.train import TrainResult, train

    written = Counter()
    open_file = Path.open

    def counting_open(self, mode="r", *args, **kwargs):  # write_text opens through it too
        if any(m in mode for m in "wax+"):
            written[self.name] += 1
        return open_file(self, mode, *args, **kwargs)

    monkeypatch.setattr(Path, "open", counting_open)
    files = seed_subset(tmp_path, {"train": 200, "validation": 120, "test": 120})
    opts = TrainOptions(
        kind=kind,
        train=[files["train"]],
        validation=[files["validation"]],
        test=[files["test"]],
        base_model=str(tiny_backbone),
        output=tmp_path / "model",
        epochs=1,
        max_length=32,
        register=False,
        labelled_rounds=False,
    )
    result = train(opts)

    assert isinstance(result, TrainResult) and result.directory == tmp_path / "model"
    for name in ("socialcare.json", "metrics.json", "model_card.md"):
        assert written[name] == 1, f"{name} written {written[name]} times"
    assert result.info == json.loads((result.directory / "socialcare.json").read_text())
    metrics = json.loads((result.directory / "metrics.json").read_text())
    assert metrics.pop("runtime_parity", None) == result.parity
    assert result.metrics == metrics
    assert set(result.metrics) == {"validation", "test"}
    assert result.tag is None
    assert result.info["labels"] == {
        "intents": ["complaint", "question", "factual_error", "humour", "praise"],
        "sentiments": ["negative", "neutral", "positive"],
    }
    if kind == "finetune":
        assert result.parity["served"] == result.info["runtime"]
        served = result.parity["test"]["overall"]["sentiment_macro_f1"][result.info["runtime"]]
        assert result.metrics["test"]["overall"]["sentiment"]["macro_f1"] == served
    else:
        assert result.parity is None and "runtime" not in result.info


def test_the_main_job_retrains_when_the_data_changed_or_no_model_exists():
    from socialcare.cli.main_job import Registered, retrain_reason

    current = "a" * 64
    same = Registered("socialcare-classifier:v1", current)
    assert retrain_reason("baseline", current, same) is None
    assert retrain_reason("baseline", current, None) == "no baseline model is registered"
    changed = retrain_reason("finetune", current, Registered("socialcare-classifier:v1", "b" * 64))
    assert "training data changed since socialcare-classifier:v1" in changed
    assert "bbbbbbbbbbbb then, aaaaaaaaaaaa now" in changed
    unrecorded = retrain_reason("finetune", current, Registered("socialcare-classifier:v0", None))
    assert unrecorded is not None and "not recorded" in unrecorded
    assert retrain_reason("baseline", current, same, forced=True) == "--retrain was given"


def test_frozen_layers_stay_as_pre_trained(tiny_backbone, tmp_path):
    from safetensors.torch import load_file

    files = seed_subset(tmp_path, {"train": 80, "validation": 40, "test": 40})
    model_dir = tmp_path / "model"
    args = ["train", "--base-model", str(tiny_backbone), "--output", str(model_dir)]
    args += ["--epochs", "1", "--max-length", "32", "--frozen-layers", "1"]
    args += ["--no-register", "--no-labelled-rounds"]
    for split, path in files.items():
        args += [f"--{split}", str(path)]
    assert main(args) == 0
    before = load_file(tiny_backbone / "model.safetensors")
    after = load_file(model_dir / "model.safetensors")
    layer = {k for k in after if "encoder.layer.0." in k}
    assert layer and all((after[k] == before[k]).all() for k in layer)  # frozen
    moved = [k for k in after if "encoder.layer.1." in k and not (after[k] == before[k]).all()]
    assert moved  # the layer above it trained


def test_an_optional_number_can_be_switched_off_on_the_command_line():
    from socialcare.cli import build_parser

    parser, _ = build_parser()
    off = parser.parse_args(["train", "--max-false-alarm-rate", "none"])
    assert off.max_false_alarm_rate is None and off.learning_rate is None  # search by default
    on = parser.parse_args(["train", "--max-false-alarm-rate", "0.2", "--learning-rate", "3e-5"])
    assert (on.max_false_alarm_rate, on.learning_rate) == (0.2, 3e-5)
