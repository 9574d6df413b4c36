import json

import numpy as np
import pytest

from socialcare.core.evaluation import (
    evaluate,
    expected_calibration_error,
    format_scores,
    write_plots,
)
from socialcare.core.labels import INTENTS, SENTIMENTS

C, Q, F, H, P = (INTENTS.index(name) for name in INTENTS)
NEG, NEU, POS = (SENTIMENTS.index(name) for name in SENTIMENTS)


def one_hot(rows: list[list[int]]) -> np.ndarray:
    matrix = np.zeros((len(rows), len(INTENTS)), dtype=int)
    for i, row in enumerate(rows):
        matrix[i, row] = 1
    return matrix


def toy() -> dict:
    """Six posts, three per language, with scores worked out by hand in the tests below.

    post  lang  true intents  predicted    true sentiment  predicted (argmax)
    1     sv    C             C            neg             neg
    2     sv    C, Q          C            neg             neu
    3     sv    P             H, P         pos             pos
    4     it    Q             Q            neu             neu
    5     it    C             Q            neg             neg
    6     it    -             -            pos             neu

    Intent probabilities: 0.9 / 0.1 where the 0.5 decision is right (confidence 0.9), 0.6 / 0.4
    where it is wrong (confidence 0.6). Sentiment: 0.8 on the top class when it is right, 0.6
    when it is wrong.
    """
    intent_true = one_hot([[C], [C, Q], [P], [Q], [C], []])
    intent_pred = one_hot([[C], [C], [H, P], [Q], [Q], []])
    right = np.where(intent_true == 1, 0.9, 0.1)
    wrong = np.where(intent_pred == 1, 0.6, 0.4)
    sentiment_prob = np.array(
        [
            [0.8, 0.1, 0.1],
            [0.3, 0.6, 0.1],
            [0.1, 0.1, 0.8],
            [0.1, 0.8, 0.1],
            [0.8, 0.1, 0.1],
            [0.1, 0.6, 0.3],
        ]
    )
    return {
        "langs": ["sv", "sv", "sv", "it", "it", "it"],
        "intent_true": intent_true,
        "intent_known": np.ones(6, dtype=bool),
        "intent_prob": np.where(intent_true == intent_pred, right, wrong),
        "intent_pred": intent_pred,
        "sentiment_true": np.array([NEG, NEG, POS, NEU, NEG, POS]),
        "sentiment_prob": sentiment_prob,
    }


def test_intent_scores_on_a_hand_computed_case():
    metrics = evaluate(**toy())
    overall = metrics["overall"]["intents"]
    # complaint: true on 1,2,5, predicted on 1,2 -> TP 2, FP 0, FN 1
    # P = 2/2 = 1, R = 2/3, F1 = 2 * 1 * 2/3 / (1 + 2/3) = 0.8
    # false alarms: none of posts 3, 4, 6 (no complaint) flagged -> 0; ECE: five pairs
    # right at confidence 0.9, post 5 wrong at 0.6 -> 5/6 * 0.1 + 1/6 * 0.6
    assert overall["complaint"] == pytest.approx(
        {"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3}
        | {"false_alarm_rate": 0.0, "ece": 1.1 / 6}
    )
    # question: true on 2,4, predicted on 4,5 -> TP 1, FP 1, FN 1 -> P = R = F1 = 0.5
    # false alarms: post 5 of posts 1, 3, 5, 6 -> 1/4; ECE: 2 and 5 wrong -> (0.4 + 1.2) / 6
    assert overall["question"] == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
        | {"false_alarm_rate": 0.25, "ece": 1.6 / 6}
    )
    # factual_error: never true, never predicted -> all undefined -> 0.0
    assert overall["factual_error"] == pytest.approx(
        {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
        | {"false_alarm_rate": 0.0, "ece": 0.1}
    )
    # humour: never true, predicted on 3 -> TP 0, FP 1 -> P = 0, R undefined -> 0, F1 = 0
    # (false alarms: post 3 of all six -> 1/6)
    assert overall["humour"] == pytest.approx(
        {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
        | {"false_alarm_rate": 1 / 6, "ece": 1.1 / 6}
    )
    # praise: true and predicted on 3 only -> P = R = F1 = 1
    assert overall["praise"] == pytest.approx(
        {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
        | {"false_alarm_rate": 0.0, "ece": 0.1}
    )
    # macro over all five, zero-support ones included: (0.8 + 0.5 + 0 + 0 + 1) / 5 = 0.46
    assert metrics["overall"]["intent_macro_f1"] == pytest.approx(0.46)
    # micro: TP 2+1+0+0+1 = 4, FP 0+1+0+1+0 = 2, FN 1+1+0+0+0 = 2 -> P = R = F1 = 4/6
    assert metrics["overall"]["intent_micro_f1"] == pytest.approx(2 / 3)
    # whole label set right on posts 1, 4 and 6 (the empty set counts) -> 3/6
    assert metrics["overall"]["intent_exact_match"] == pytest.approx(0.5)
    # 30 (post, intent) pairs; wrong at 0.5: 2Q, 3H, 5C, 5Q.
    # bin [0.9, 1.0]: 26 pairs, accuracy 1, confidence 0.9 -> 26/30 * 0.1
    # bin [0.6, 0.7): 4 pairs, accuracy 0, confidence 0.6 -> 4/30 * 0.6; sum = 5/30
    assert metrics["overall"]["intent_ece"] == pytest.approx(1 / 6)

    sv, it = metrics["by_lang"]["sv"], metrics["by_lang"]["it"]
    # sv (posts 1-3): complaint TP 2 -> F1 1; question FN 1 -> 0; humour FP 1 -> 0; praise 1
    # macro = (1 + 0 + 0 + 0 + 1) / 5 = 0.4; exact match: post 1 only -> 1/3
    assert [sv["intents"][name]["f1"] for name in INTENTS] == pytest.approx([1, 0, 0, 0, 1])
    assert sv["intent_macro_f1"] == pytest.approx(0.4)
    assert sv["intent_exact_match"] == pytest.approx(1 / 3)
    # it (posts 4-6): complaint FN 1 -> 0; question TP 1, FP 1 -> P 1/2, R 1, F1 2/3
    # macro = (0 + 2/3 + 0 + 0 + 0) / 5 = 2/15; exact match: posts 4 and 6 -> 2/3
    # false alarms: post 5 of posts 5, 6 -> 1/2; ECE: post 5 wrong -> 2/3 * 0.1 + 1/3 * 0.6
    assert it["intents"]["question"] == pytest.approx(
        {"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1}
        | {"false_alarm_rate": 0.5, "ece": 0.8 / 3}
    )
    assert it["intent_macro_f1"] == pytest.approx(2 / 15)
    assert it["intent_exact_match"] == pytest.approx(2 / 3)
    assert list(metrics["by_lang"]) == ["sv", "it"]
    assert metrics["n_posts"] == 6
    assert (sv["n_intent"], it["n_intent"]) == (3, 3)


def test_sentiment_scores_on_a_hand_computed_case():
    metrics = evaluate(**toy())
    sentiment = metrics["overall"]["sentiment"]
    # rows true, columns predicted: neg -> neg, neu, neg; neu -> neu; pos -> pos, neu
    assert sentiment["confusion"] == [[2, 1, 0], [0, 1, 0], [0, 1, 1]]
    # negative: TP 2, FP 0, FN 1 -> P 1, R 2/3, F1 0.8
    # neutral:  TP 1, FP 2, FN 0 -> P 1/3, R 1, F1 2 * 1/3 / (4/3) = 0.5
    # positive: TP 1, FP 0, FN 1 -> P 1, R 1/2, F1 2/3
    per_class = sentiment["per_class"]
    assert per_class["negative"] == pytest.approx(
        {"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3}
    )
    assert per_class["neutral"] == pytest.approx(
        {"precision": 1 / 3, "recall": 1.0, "f1": 0.5, "support": 1}
    )
    assert per_class["positive"]["f1"] == pytest.approx(2 / 3)
    # macro = (0.8 + 0.5 + 2/3) / 3 = 59/90; accuracy 4/6
    assert sentiment["macro_f1"] == pytest.approx(59 / 90)
    assert sentiment["accuracy"] == pytest.approx(2 / 3)
    # four right at 0.8 -> 4/6 * |1 - 0.8|; two wrong at 0.6 -> 2/6 * |0 - 0.6|; sum = 1/3
    assert sentiment["ece"] == pytest.approx(1 / 3)
    # sv: neg -> neg, neg -> neu, pos -> pos: F1 neg 2/3, neu 0, pos 1 -> macro 5/9
    sv = metrics["by_lang"]["sv"]["sentiment"]
    assert sv["confusion"] == [[1, 1, 0], [0, 0, 0], [0, 0, 1]]
    assert sv["macro_f1"] == pytest.approx(5 / 9)


def test_posts_without_labels_are_left_out():
    case = toy()
    # A seventh post: intents unknown and sentiment unknown, with labels and probabilities that
    # would change every score if they were counted.
    extra = {
        "langs": ["it"],
        "intent_true": np.ones((1, len(INTENTS)), dtype=int),
        "intent_known": np.array([False]),
        "intent_prob": np.full((1, len(INTENTS)), 0.1),
        "intent_pred": np.zeros((1, len(INTENTS)), dtype=int),
        "sentiment_true": np.array([-1]),
        "sentiment_prob": np.array([[0.0, 0.0, 1.0]]),
    }
    longer = {
        key: list(value) + extra[key] if key == "langs" else np.concatenate([value, extra[key]])
        for key, value in case.items()
    }
    base, metrics = evaluate(**case), evaluate(**longer)
    assert metrics["n_posts"] == 7
    assert metrics["overall"] == base["overall"]
    assert metrics["by_lang"]["it"] == base["by_lang"]["it"]


def test_a_language_without_labels_has_no_scores_not_zero():
    case = toy()
    case["intent_known"] = np.array([True, True, True, False, False, False])
    case["sentiment_true"] = np.array([NEG, NEG, POS, -1, -1, -1])
    it = evaluate(**case)["by_lang"]["it"]
    assert (it["n_intent"], it["n_sentiment"]) == (0, 0)
    assert it["intent_macro_f1"] is None and it["intents"]["question"]["f1"] is None
    assert it["sentiment"]["macro_f1"] is None
    assert "| it | – |" in format_scores(evaluate(**case))


def test_intent_f1_follows_the_callers_decisions_not_the_probabilities():
    case = toy()
    case["intent_pred"] = np.zeros_like(case["intent_pred"])
    metrics = evaluate(**case)
    assert metrics["overall"]["intent_macro_f1"] == 0.0
    assert metrics["overall"]["intent_ece"] == pytest.approx(1 / 6)  # ECE reads probabilities


def test_metrics_are_plain_json():
    text = json.dumps(evaluate(**toy()), allow_nan=False)
    assert json.loads(text)["overall"]["sentiment"]["confusion"][0] == [2, 1, 0]


def test_wrong_shape_names_the_array():
    case = toy()
    case["sentiment_prob"] = case["sentiment_prob"][:, :2]
    with pytest.raises(ValueError, match=r"sentiment_prob has shape \(6, 2\), expected \(6, 3\)"):
        evaluate(**case)


def test_ece_on_a_hand_computed_case():
    probs = np.array([0.95, 0.9, 1.0, 0.65, 0.6, 0.3])
    correct = np.array([True, True, True, False, True, False])
    # [0.9, 1.0]: 0.95, 0.9, 1.0 (1.0 in the last bin) -> accuracy 1, confidence 0.95
    #             -> 3/6 * 0.05 = 0.025
    # [0.6, 0.7): 0.65, 0.6 -> accuracy 1/2, confidence 0.625 -> 2/6 * 0.125 = 0.041666...
    # [0.3, 0.4): 0.3 (its lower edge) -> accuracy 0, confidence 0.3 -> 1/6 * 0.3 = 0.05
    # total = 1.5/60 + 2.5/60 + 3/60 = 7/60
    assert expected_calibration_error(probs, correct) == pytest.approx(7 / 60)
    # one bin: |mean correct - mean confidence| = |4/6 - 4.4/6| = 0.4/6
    assert expected_calibration_error(probs, correct, bins=1) == pytest.approx(0.4 / 6)


def test_ece_refuses_logits_and_empty_input():
    with pytest.raises(ValueError, match="not logits"):
        expected_calibration_error(np.array([2.3]), np.array([True]))
    with pytest.raises(ValueError, match="empty"):
        expected_calibration_error(np.array([]), np.array([], dtype=bool))


def test_write_plots_writes_three_pngs(tmp_path):
    case = toy()
    paths = write_plots(
        evaluate(**case),
        case["sentiment_true"],
        case["sentiment_prob"],
        case["intent_true"],
        case["intent_known"],
        case["intent_prob"],
        tmp_path / "plots",
    )
    names = ["sentiment_confusion.png", "intent_f1_by_lang.png", "calibration.png"]
    assert [path.name for path in paths] == names
    for path in paths:
        assert path.parent == tmp_path / "plots"
        assert path.read_bytes().startswith(b"\x89PNG") and path.stat().st_size > 1000


def test_format_scores_shows_percentages_and_ece():
    table = format_scores(evaluate(**toy())).splitlines()
    assert table[0].startswith("| lang | intent macro-F1 | complaint F1 |")
    assert [line.split(" | ")[0] for line in table[2:]] == ["| overall", "| sv", "| it"]
    # overall: macro 46.0%, F1 per intent 80.0 / 50.0 / 0.0 / 0.0 / 100.0, sentiment macro
    # 59/90 = 65.6%, accuracy 66.7%, intent ECE 1/6 = 0.167, sentiment ECE 1/3 = 0.333
    assert table[2] == (
        "| overall | 46.0% | 80.0% | 50.0% | 0.0% | 0.0% | 100.0% | 65.6% | 66.7% | 0.167 | 0.333 |"
    )
    assert table[3].startswith("| sv | 40.0% | 100.0% | 0.0% |")
    assert table[4].startswith("| it | 13.3% |")
