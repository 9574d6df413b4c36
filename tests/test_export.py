"""ONNX export, int8, the predictor's runtimes and the served-runtime choice, on a tiny model."""

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from socialcare.core import paths
from socialcare.core.arrays import encode_posts
from socialcare.core.records import load_posts
from socialcare.runtime.model import IntentSentimentModel
from socialcare.runtime.predictor import (
    INFO_FILE,
    ONNX_FILES,
    ONNX_FP32,
    ONNX_INT8,
    ONNX_INT8_SMOOTH,
    RUNTIMES,
    TORCH,
    Decision,
    Predictions,
    Predictor,
    model_labels,
    sigmoid,
    write_info,
)
from training.export import export_onnx, main
from training.runtimes import (
    FASTEST_FIRST,
    GATE_MAX_FLIPS,
    GATE_MAX_LOSS,
    Calibrated,
    choose_served,
)
from training.smoothquant import ALPHAS

MAX_LENGTH = 24  # short, so that some seed posts are truncated


@pytest.fixture(scope="module")
def tiny_model(tiny_backbone, tmp_path_factory) -> tuple[Path, dict]:
    """A fine-tuned-model directory (untrained heads on the tiny backbone), exported."""
    from transformers import AutoModel, AutoTokenizer

    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("tiny-finetuned")
    model = IntentSentimentModel(AutoModel.from_pretrained(tiny_backbone, add_pooling_layer=False))
    model.save(directory)
    AutoTokenizer.from_pretrained(tiny_backbone).save_pretrained(directory)
    info = {
        "kind": "finetune",
        "text_prefix": "query: ",
        "max_length": MAX_LENGTH,
        "labels": model_labels(),
    }
    write_info(directory, info, Decision())
    calibration = load_posts([paths.seed_split("validation")])[:40]
    return directory, export_onnx(
        directory,
        json.loads((directory / INFO_FILE).read_text()),
        ([p.text for p in calibration], [p.parent_text for p in calibration]),
    )


@pytest.fixture(scope="module")
def texts() -> list[str]:
    posts = load_posts([paths.seed_split("validation")])
    return [post.text for post in posts[::8]] + ["ok", "🙂"]


def copy_model(directory: Path, target: Path, **info_changes) -> Path:
    """A copy of the model directory with socialcare.json keys changed (None removes one)."""
    shutil.copytree(directory, target)
    info = json.loads((target / INFO_FILE).read_text())
    info.update(info_changes)
    info = {k: v for k, v in info.items() if v is not None}
    (target / INFO_FILE).write_text(json.dumps(info))
    return target


def test_onnx_fp32_reproduces_torch_and_int8_stays_close(tiny_model, texts):
    directory, record = tiny_model
    assert all((directory / name).stat().st_size > 0 for name in ONNX_FILES.values())
    assert record["checks"][ONNX_FP32]["max_abs_logit_diff"] < 1e-4
    assert record["int8_quantization"]["quantised"] == "12 encoder MatMuls"  # 6 per layer
    # SmoothQuant's graph too, its α chosen on the 40 calibration posts.
    assert record["int8_smooth_quantization"]["alpha"]["chosen"] in ALPHAS
    assert set(record["files"]) == set(ONNX_FILES)

    # Batches of 7 over 42 posts of many lengths: batch and sequence axes really are dynamic.
    torch_intent, torch_sentiment = Predictor(directory, 7, runtime=TORCH).logits(texts)
    onnx_intent, onnx_sentiment = Predictor(directory, 7, runtime=ONNX_FP32).logits(texts)
    np.testing.assert_allclose(onnx_intent, torch_intent, atol=1e-4)
    np.testing.assert_allclose(onnx_sentiment, torch_sentiment, atol=1e-4)

    int8_intent, _ = Predictor(directory, 7, runtime=ONNX_INT8).logits(texts)
    drift = np.abs(sigmoid(int8_intent) - sigmoid(torch_intent))
    assert 0 < drift.max() < 0.05  # quantised (not a copy of fp32), yet close


def test_a_model_trained_for_sentiment_only_exports(tiny_model, tmp_path):
    """Its intent logits are -inf on every runtime: equal, not a broken export."""
    directory = copy_model(tiny_model[0], tmp_path / "model", trained_heads=["sentiment"])
    checks = export_onnx(directory, json.loads((directory / INFO_FILE).read_text()))["checks"]
    assert checks[ONNX_FP32]["max_abs_logit_diff"] < 1e-4
    assert np.isfinite(checks[ONNX_INT8]["max_abs_logit_diff"])


def test_int8_keeps_embeddings_and_heads_in_fp32(tiny_model):
    import onnx

    directory, _ = tiny_model
    graph = onnx.load(str(directory / ONNX_FILES[ONNX_INT8])).graph
    quantised = {node.name for node in graph.node if node.op_type == "MatMulNBits"}
    assert quantised, "no MatMul was quantised"
    assert not any("head" in name for name in quantised)
    embeddings = [i for i in graph.initializer if "word_embeddings" in i.name]
    assert embeddings and all(i.data_type == onnx.TensorProto.FLOAT for i in embeddings)


def test_predictor_serves_the_recorded_runtime_else_onnx_fp32_else_torch(tiny_model, tmp_path):
    directory, _ = tiny_model
    assert Predictor(copy_model(directory, tmp_path / "a")).runtime == ONNX_FP32
    recorded = copy_model(directory, tmp_path / "b", runtime=ONNX_INT8)
    assert Predictor(recorded).runtime == ONNX_INT8
    assert Predictor(recorded, runtime=TORCH).runtime == TORCH

    bare = copy_model(directory, tmp_path / "c")
    (bare / ONNX_FILES[ONNX_FP32]).unlink()
    assert Predictor(bare).runtime == TORCH
    with pytest.raises(FileNotFoundError, match=r"model\.onnx: missing.*training\.export"):
        Predictor(bare, runtime=ONNX_FP32)
    with pytest.raises(ValueError, match="unknown 'tensorrt'; expected one of torch"):
        Predictor(directory, runtime="tensorrt")


def test_predictions_keep_input_order_and_flag_truncated_posts(tiny_model, texts):
    from transformers import AutoTokenizer

    directory, _ = tiny_model
    predictor = Predictor(directory, batch_size=5)
    together = predictor.predict(texts, ["sv"] * len(texts))
    for i in (0, 7, 19, len(texts) - 1):  # each post alone: no sorting, no padding
        alone = predictor.predict([texts[i]], ["sv"])
        np.testing.assert_allclose(together.intent_prob[i], alone.intent_prob[0], atol=1e-5)
        np.testing.assert_allclose(together.sentiment_prob[i], alone.sentiment_prob[0], atol=1e-5)

    tokenizer = AutoTokenizer.from_pretrained(directory)
    lengths = [len(tokenizer("query: " + text)["input_ids"]) for text in texts]
    assert together.truncated.tolist() == [n > MAX_LENGTH for n in lengths]
    assert 0 < together.truncated.sum() < len(texts)


def test_tokens_match_transformers_and_batches_pad_to_their_longest(tiny_model, texts):
    from transformers import AutoTokenizer

    directory, _ = tiny_model
    batcher = Predictor(directory)._tokens
    ids, _ = batcher.encode(texts)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    expected = tokenizer(["query: " + t for t in texts], truncation=True, max_length=MAX_LENGTH)
    assert ids == expected["input_ids"]

    seen = []
    for index, input_ids, attention_mask in batcher.batches(ids, batch_size=4):
        lengths = [len(ids[i]) for i in index]
        assert input_ids.shape == (len(index), max(lengths))  # dynamic padding
        assert attention_mask.sum(axis=1).tolist() == lengths
        seen.extend(index.tolist())
    assert sorted(seen) == list(range(len(texts)))
    assert [len(ids[i]) for i in seen] == sorted(len(row) for row in ids)  # length-sorted


def test_a_long_post_does_not_pad_a_batch_of_short_ones(tiny_model):
    from socialcare.runtime.tokens import MAX_PADDING, PADDING_SLACK_TOKENS

    directory, _ = tiny_model
    batcher = Predictor(directory)._tokens
    ids = [[5] * 30 for _ in range(31)] + [[5] * 200]
    batches = batcher.batches(ids, batch_size=32)
    widths = [input_ids.shape[1] for _, input_ids, _ in batches]
    assert widths == [30, 200]  # not one 32 x 200 batch, 85% padding
    for *_, attention_mask in batches:
        padding = attention_mask.size - attention_mask.sum()
        assert padding <= max(PADDING_SLACK_TOKENS, (MAX_PADDING - 1) * attention_mask.sum())
    assert [len(index) for index, _, _ in batcher.batches(ids[:31], batch_size=8)] == [8, 8, 8, 7]


def test_concurrent_callers_get_the_same_predictions(tiny_model, texts):
    directory, _ = tiny_model
    predictor = Predictor(directory, runtime=ONNX_FP32)
    expected = [predictor.predict([text]).intent_prob[0] for text in texts]
    # A second predictor whose ONNX Runtime threads sleep rather than spin between ops.
    sleeper = Predictor(directory, runtime=ONNX_FP32, spinning=False)
    options = sleeper._session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(lambda text: predictor.predict([text]).intent_prob[0], texts))
        slept = list(pool.map(lambda text: sleeper.predict([text]).intent_prob[0], texts))
    np.testing.assert_allclose(np.array(got), np.array(expected), atol=1e-6)
    np.testing.assert_allclose(np.array(slept), np.array(expected), atol=1e-6)


def toy_predictions(intents: np.ndarray, sentiment: np.ndarray) -> Predictions:
    n = len(intents)
    scores = np.full((n, 3), 0.1)
    scores[np.arange(n), sentiment] = 0.8
    return Predictions(
        intent_prob=intents.astype(float), intent_pred=intents.astype(bool),
        sentiment_prob=scores, thresholds=np.full(intents.shape, 0.5),
        truncated=np.zeros(n, dtype=bool),
    )  # fmt: skip


def toy_comparison(int8_intents: np.ndarray, int8_sentiment: np.ndarray, smooth=None):
    """Torch and ONNX fp32 right on 400 toy posts (200 per language, both splits); int8
    with the decisions given, and SmoothQuant int8 with ``smooth``'s (intents, sentiment)
    when given."""
    from socialcare.core.arrays import LabelArrays

    rng = np.random.default_rng(0)
    n = 400
    intents = rng.random((n, 5)) < 0.3
    sentiment = rng.integers(0, 3, n)
    labelled = LabelArrays(
        texts=["x"] * n, langs=["sv", "it"] * (n // 2), parents=[None] * n,
        intents=intents.astype(np.float32), intent_known=np.ones(n, dtype=bool),
        sentiment=sentiment,
    )  # fmt: skip
    halves = {"validation": slice(0, n // 2), "test": slice(n // 2, n)}
    splits = {
        split: LabelArrays(
            texts=labelled.texts[part],
            langs=labelled.langs[part],
            parents=labelled.parents[part],
            intents=labelled.intents[part],
            intent_known=labelled.intent_known[part],
            sentiment=labelled.sentiment[part],
        )  # fmt: skip
        for split, part in halves.items()
    }

    def runtime(name: str, intent_pred: np.ndarray, sentiment_pred: np.ndarray) -> Calibrated:
        predictions = {
            split: toy_predictions(intent_pred[part], sentiment_pred[part])
            for split, part in halves.items()
        }
        from socialcare.core.evaluation import evaluate_predictions

        metrics = {s: evaluate_predictions(splits[s], predictions[s]) for s in splits}
        return Calibrated(name, None, predictions, metrics)

    compared = {
        TORCH: runtime(TORCH, intents, sentiment),
        ONNX_FP32: runtime(ONNX_FP32, intents, sentiment),
        ONNX_INT8: runtime(ONNX_INT8, int8_intents, int8_sentiment),
    }
    if smooth is not None:
        compared[ONNX_INT8_SMOOTH] = runtime(ONNX_INT8_SMOOTH, *smooth)
    return compared, splits, intents, sentiment


def test_the_gate_serves_a_faithful_int8_and_refuses_a_lossy_one():
    _, _, intents, sentiment = toy_comparison(np.zeros((400, 5)), np.zeros(400, dtype=int))

    # Faithful: the same decisions but for 8 of the 2,000 (post, intent) pairs, spread.
    faithful = intents.copy()
    for k in range(8):  # half Swedish (even rows), half Italian
        row = k * 50 + k % 2
        faithful[row, k % 5] = ~faithful[row, k % 5]
    served, report = choose_served(*toy_comparison(faithful, sentiment)[:2])
    verdict = report["gate"]["runtimes"][ONNX_INT8]
    assert verdict["passed"] and verdict["intent_flips"] == pytest.approx(0.004)
    assert verdict["sentiment_flips"] == 0.0
    assert served.runtime == ONNX_INT8  # the fastest that passes

    # Lossy: 3% of the sentiment labels changed (over the flip limit), though a macro-F1
    # on a few hundred posts might not show it.
    lossy = sentiment.copy()
    lossy[:12] = (lossy[:12] + 1) % 3
    served, report = choose_served(*toy_comparison(intents, lossy)[:2])
    verdict = report["gate"]["runtimes"][ONNX_INT8]
    assert verdict["sentiment_flips"] == pytest.approx(0.03)
    assert verdict["sentiment_flips"] > GATE_MAX_FLIPS
    assert not verdict["passed"] and served.runtime == ONNX_FP32  # the next fastest

    # Lossy on one language's intents: few flips, but a macro-F1 loss over the limit.
    wrong = intents.copy()
    wrong[1:40:2, 3] = ~wrong[1:40:2, 3]  # Italian posts (odd rows), one intent
    served, report = choose_served(*toy_comparison(wrong, sentiment)[:2])
    verdict = report["gate"]["runtimes"][ONNX_INT8]
    assert verdict["intent_flips"] <= GATE_MAX_FLIPS
    assert verdict["worst_loss"] > GATE_MAX_LOSS and verdict["where"].startswith("it intent")
    assert served.runtime == ONNX_FP32
    assert report["gate"]["runtimes"][ONNX_FP32]["passed"]


def test_the_gate_prefers_smoothquant_int8_and_falls_back_to_block_wise():
    _, _, intents, sentiment = toy_comparison(np.zeros((400, 5)), np.zeros(400, dtype=int))
    lossy = sentiment.copy()
    lossy[:12] = (lossy[:12] + 1) % 3  # 3% of the sentiment labels: over the flip limit

    # Both int8 graphs faithful: the faster (SmoothQuant, per-tensor kernel) is served.
    served, report = choose_served(*toy_comparison(intents, sentiment, (intents, sentiment))[:2])
    assert report["gate"]["runtimes"][ONNX_INT8_SMOOTH]["passed"]
    assert served.runtime == ONNX_INT8_SMOOTH
    # SmoothQuant's lossy: block-wise int8, the next fastest, is served instead.
    served, report = choose_served(*toy_comparison(intents, sentiment, (intents, lossy))[:2])
    assert not report["gate"]["runtimes"][ONNX_INT8_SMOOTH]["passed"]
    assert served.runtime == ONNX_INT8


def test_training_serves_a_runtime_chosen_on_validation(tiny_model, tmp_path):
    from training.config import TrainOptions
    from training.report import write_report
    from training.train import choose_served_runtime

    directory = copy_model(tiny_model[0], tmp_path / "model")
    for name in ONNX_FILES.values():
        (directory / name).unlink()
    held_out = {
        "validation": encode_posts(load_posts([paths.seed_split("validation")])[::4]),
        "test": encode_posts(load_posts([paths.seed_split("test")])[::4]),
    }
    info = json.loads((directory / INFO_FILE).read_text())
    info, served, report = choose_served_runtime(TrainOptions(), directory, info, held_out)

    assert info["runtime"] == served.runtime
    assert info["onnx"]["checks"][ONNX_FP32]["max_abs_logit_diff"] < 1e-4
    # Every int8 graph was judged; the fastest that passed is served.
    verdicts = report["gate"]["runtimes"]
    assert set(verdicts) == set(RUNTIMES)
    assert info["runtime"] == next(r for r in FASTEST_FIRST if verdicts[r]["passed"])
    assert verdicts[ONNX_INT8]["splits"] == ["validation", "test"]
    sv = report["test"]["sv"]["sentiment_macro_f1"]
    assert set(sv) == set(RUNTIMES)
    assert sv[ONNX_FP32] == pytest.approx(sv[TORCH], abs=1e-9)  # same logits, same scores
    # The model's scores are the served runtime's, from the same fitted decision.
    assert served.metrics["test"]["by_lang"]["sv"]["sentiment"]["macro_f1"] == sv[served.runtime]

    write_report(directory, "tiny", {}, served.metrics, report)
    assert json.loads((directory / "metrics.json").read_text())["runtime_parity"] == report
    card = (directory / "model_card.md").read_text()
    assert f"Served on **{info['runtime']}**" in card and "| it | sentiment |" in card
    assert "sentiment labels flipped" in card  # the gate's numbers


def test_export_command_serves_an_old_model_on_onnx_fp32(tiny_model, tmp_path, capsys):
    directory = copy_model(tiny_model[0], tmp_path / "old", onnx=None, runtime=None)
    for name in ONNX_FILES.values():
        (directory / name).unlink()
    assert Predictor(directory).runtime == TORCH
    assert main([str(directory)]) == 0
    assert "served on onnx-fp32" in capsys.readouterr().out
    info = json.loads((directory / INFO_FILE).read_text())
    # No validation files recorded: no calibration posts for SmoothQuant, block-wise only.
    assert set(info["onnx"]["files"]) == {ONNX_FP32, ONNX_INT8} and "runtime" not in info
    assert Predictor(directory).runtime == ONNX_FP32

    with pytest.raises(SystemExit):
        main([str(tmp_path)])  # not a model directory
    assert "no socialcare.json" in capsys.readouterr().err


def test_smoothing_leaves_the_fp32_graph_s_answers_unchanged(tiny_model, tmp_path):
    """SmoothQuant's scales moved into the weights give the same fp32 logits; its int8
    graph runs and stays near them, also with block-wise down-projections."""
    import onnx
    import onnxruntime

    from socialcare.runtime.tokens import TokenBatcher
    from training.export import CHECK_TEXTS, _encoder_matmuls
    from training.smoothquant import down_projections, input_maxima, quantize_int8_smooth, smooth

    directory = tiny_model[0]
    info = json.loads((directory / INFO_FILE).read_text())
    fp32 = directory / ONNX_FILES[ONNX_FP32]
    matmuls = _encoder_matmuls(fp32)
    tokens = TokenBatcher.for_model(directory, info)
    ids, _ = tokens.encode(list(CHECK_TEXTS))
    batches = [(input_ids, mask) for _, input_ids, mask in tokens.batches(ids, batch_size=4)]
    maxima = input_maxima(fp32, matmuls, batches)
    assert len(maxima) < len(matmuls)  # Q, K and V share their input: one scale for three
    smoothed = tmp_path / "smoothed.onnx"
    smooth(fp32, smoothed, matmuls, maxima, alpha=0.8)

    def logits(path: Path) -> list[np.ndarray]:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return [
            np.concatenate(outputs)
            for outputs in zip(
                *(session.run(None, {"input_ids": i, "attention_mask": m}) for i, m in batches),
                strict=True,
            )
        ]

    for before, after in zip(logits(fp32), logits(smoothed), strict=True):
        np.testing.assert_allclose(after, before, atol=1e-4)
    int8 = tmp_path / "int8.onnx"
    record = quantize_int8_smooth(directory, info, fp32, int8, CHECK_TEXTS, alphas=(0.5, 0.9))
    assert record["quantised"] == f"{len(matmuls)} encoder MatMuls per tensor"
    # The α kept is the one whose decisions moved least from fp32's (the first on a tie).
    tried = record["alpha"]["tried"]
    worst = [max(t["intent_flips"], t["sentiment_flips"]) for t in tried]
    assert [t["alpha"] for t in tried] == [0.5, 0.9]
    assert record["alpha"]["chosen"] == tried[worst.index(min(worst))]["alpha"]
    for before, after in zip(logits(fp32), logits(int8), strict=True):
        assert np.abs(after - before).max() < 1.0

    # Over the flip budget (here any flip, even none), the down-projections go block-wise
    # unless that flips more.
    mixed = tmp_path / "mixed.onnx"
    record = quantize_int8_smooth(
        directory, info, fp32, mixed, CHECK_TEXTS, alphas=(0.8,), flip_budget=-1.0
    )
    down = down_projections(fp32, matmuls)
    assert len(down) == 2  # one per layer of the tiny model: its FFN's second MatMul
    assert all("output/dense" in name and "attention" not in name for name in down)
    tried = record["down_projections_block_wise"]["tried"]
    kept = max(tried.values()) <= max(record["alpha"]["tried"][0][k] for k in tried)
    assert record["down_projections_block_wise"]["kept"] == kept
    ops = {node.op_type for node in onnx.load(str(mixed)).graph.node}
    assert ("MatMulNBits" in ops) == kept
    for before, after in zip(logits(fp32), logits(mixed), strict=True):
        assert np.abs(after - before).max() < 1.0
