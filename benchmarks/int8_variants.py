"""Which int8? Quantisation methods of the same fine-tuned model, side by side (a script).

    .venv/bin/python benchmarks/int8_variants.py [--model TAG] [--only static bf16]

For the model's exported fp32 graph (default: the production model, else the newest), each
int8 variant below is built in a temporary copy of the model directory and judged the way
training judges its int8 candidate (training/runtimes.py): calibrated and thresholded on
validation as it would be served, then its worst macro-F1 loss against torch fp32 per
language and head, on validation (where the serving choice is made) and on test. Also:
how far its logits move from ONNX fp32 (max |difference| over validation + test), how
many decisions flip (intent labels and sentiment under the fp32 model's own thresholds),
and speed (texts/s in 32-post calls; one-post p50), fp32 measured in the same run.

- dynamic: `quantize_dynamic`, weights per channel, activations uint8 with one scale
  per tensor per call (what training used before);
- dynamic, FFN output in fp32: the same, leaving out the 12 feed-forward output
  MatMuls, whose inputs have the strongest per-token outliers;
- block-wise: MatMulNBits, 8 bits, blocks of 128 input channels, activations int8 per
  token and block;
- SmoothQuant (training/smoothquant.py), α 0.5 and 0.8: per-channel scales from the
  validation posts' activations move the outliers into the weights, then the dynamic
  per-tensor kernel; and α chosen among ALPHAS on validation, as training does (the
  runtime onnx-int8-smooth, whose down-projections go block-wise when the best α
  flips over smoothquant.FLIP_BUDGET of the validation decisions);
- static QDQ: activation scales fixed from 300 validation posts (MinMax), weights per
  channel, plain and after SmoothQuant α 0.8;
- <s> and </s> apart: e5's largest activations sit in those two rows of each post (on
  the validation posts, layer 4's down-projection input peaks at 68 there and at 6.5 in
  every other token); those rows go through a MatMul of their own, with its own
  per-tensor scale, and the rest is quantised per tensor without smoothing; in every
  MatMul, or only where the two rows peak over 1.5x the rest. The rows are found by
  position (first and last real token), so a reply's separators between parent and
  reply (``</s></s>`` mid-sequence) stay in the per-tensor scale: on the validation
  replies this flips 7.6% of sentiments (0.8% on posts without a parent);
- torch under bf16 autocast (this CPU's AVX512_BF16), not a graph but judged alike.

Each row also shows the quality gate (training.runtimes.gate: against torch fp32 on
validation ∪ test, ≤ 1.0 point per language and head, ≤ 2% flipped decisions).

Results: benchmarks/results/int8_variants.{json,md}.
"""

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from serve_load import predictor_speed as speed  # noqa: E402  (same folder)

from socialcare.core import paths  # noqa: E402
from socialcare.core.records import load_posts  # noqa: E402
from socialcare.runtime.predictor import ONNX_FILES, ONNX_FP32, ONNX_INT8, TORCH, Predictor  # noqa: E402
from training.smoothquant import ALPHAS, FLIP_BUDGET  # noqa: E402

RESULTS = REPO_ROOT / "benchmarks" / "results" / "int8_variants"


def dynamic(fp32: Path, target: Path, keep_ffn_output: bool = False) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from training.export import _encoder_matmuls

    nodes = _encoder_matmuls(fp32)
    if keep_ffn_output:  # BERT names the feed-forward output "output/dense" outside attention
        nodes = [n for n in nodes if not ("/output/dense" in n and "attention" not in n)]
    quantize_dynamic(
        fp32,
        target,
        per_channel=True,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul"],
        nodes_to_quantize=nodes,
    )


def block_wise(fp32: Path, target: Path) -> None:
    from training.export import _quantize_int8

    _quantize_int8(fp32, target)


def smoothquant(alphas: tuple[float, ...], flip_budget: float = FLIP_BUDGET):
    """SmoothQuant scales from the validation posts, then the per-tensor dynamic kernel;
    of several α, the one training would choose (fewest flips on validation). Over
    ``flip_budget`` the down-projections go block-wise, as in training: 1.0 never, -1.0
    always."""

    def build(fp32: Path, target: Path, source: Path, calibration: list[str]) -> None:
        from training.smoothquant import quantize_int8_smooth

        info = json.loads((source / "socialcare.json").read_text(encoding="utf-8"))
        record = quantize_int8_smooth(
            source, info, fp32, target, calibration, alphas=alphas, flip_budget=flip_budget
        )
        print(json.dumps(record["alpha"]), record["method"], flush=True)

    return build


def static_qdq(alpha: float | None = None):
    """Static int8 in QDQ form: each activation's one scale fixed beforehand from the
    validation posts (MinMax), weights per channel; with ``alpha``, after SmoothQuant."""

    def build(fp32: Path, target: Path, source: Path, calibration: list[str]) -> None:
        from onnxruntime.quantization import (
            CalibrationDataReader,
            QuantFormat,
            QuantType,
            quantize_static,
        )

        from socialcare.runtime.tokens import TokenBatcher
        from training.export import _encoder_matmuls
        from training.smoothquant import input_maxima, smooth

        info = json.loads((source / "socialcare.json").read_text(encoding="utf-8"))
        tokens = TokenBatcher.for_model(source, info)
        ids, _ = tokens.encode(calibration)
        nodes = _encoder_matmuls(fp32)

        class Posts(CalibrationDataReader):  # one post per call: no padding in the ranges
            def __init__(self):
                self.rows = iter(ids[:300])

            def get_next(self):
                row = next(self.rows, None)
                if row is None:
                    return None
                return {
                    "input_ids": np.array([row], dtype=np.int64),
                    "attention_mask": np.ones((1, len(row)), dtype=np.int64),
                }

        with tempfile.TemporaryDirectory() as scratch:
            graph = fp32
            if alpha is not None:
                batches = [(i, m) for _, i, m in tokens.batches(ids, batch_size=32)]
                graph = Path(scratch) / "smoothed.onnx"
                smooth(fp32, graph, nodes, input_maxima(fp32, nodes, batches), alpha)
            quantize_static(
                graph,
                target,
                Posts(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                weight_type=QuantType.QInt8,
                activation_type=QuantType.QUInt8,
                op_types_to_quantize=["MatMul"],
                nodes_to_quantize=nodes,
            )

    return build


def special_token_maxima(fp32: Path, nodes: list[str], batches) -> dict[str, tuple[float, float]]:
    """Per MatMul input: the largest |activation| of the <s> and </s> rows, and of all
    other real tokens, over the (input_ids, attention_mask) batches."""
    from training.smoothquant import matmul_inputs, session_showing

    readers = matmul_inputs(fp32, nodes)
    tensors = sorted(set(readers.values()))
    session = session_showing(fp32, tensors)
    found = {tensor: (0.0, 0.0) for tensor in tensors}
    for input_ids, mask in batches:
        special = np.zeros(mask.shape, dtype=bool)
        special[:, 0] = True
        special[np.arange(len(mask)), mask.sum(1) - 1] = True
        others = (mask == 1) & ~special
        values = session.run(tensors, {"input_ids": input_ids, "attention_mask": mask})
        for tensor, value in zip(tensors, values, strict=True):
            row_max = np.abs(value).max(-1)
            peak_special, peak_other = found[tensor]
            found[tensor] = (
                max(peak_special, row_max[special].max()),
                max(peak_other, row_max[others].max()),
            )
    return {name: found[readers[name]] for name in nodes}


def special_rows_apart(fp32: Path, target: Path, nodes: set[str]) -> None:
    """Write ``target``: ``fp32`` where each MatMul of ``nodes`` reads its input with the
    <s> and </s> rows (and padding) zeroed, and those two rows per post go through a copy
    of the MatMul of their own, written back into its output. Quantised dynamically, the
    two then get separate per-tensor scales: e5's massive activations sit in those rows."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(fp32))
    graph = model.graph
    weights = {init.name: init for init in graph.initializer}

    def constant(name: str, value) -> str:
        graph.initializer.append(numpy_helper.from_array(np.asarray(value), "special_" + name))
        return "special_" + name

    zero, one = constant("zero", np.int64(0)), constant("one", np.int64(1))
    axis1, last_axis = constant("axis1", np.array([1])), constant("last_axis", np.array([-1]))
    node = helper.make_node
    # keep (B, T, 1): 1 for the real tokens between <s> and </s>; rows (B, 2, 1): the
    # positions of <s> and </s>; at (B, 2, 2): (post, position) of each, for ScatterND.
    prologue = [
        node("Shape", ["attention_mask"], ["special_shape"]),
        node("Gather", ["special_shape", zero], ["special_B"], axis=0),
        node("Gather", ["special_shape", one], ["special_T"], axis=0),
        node("Range", [zero, "special_T", one], ["special_positions"]),
        node("ReduceSum", ["attention_mask", axis1], ["special_length"], keepdims=1),
        node("Sub", ["special_length", one], ["special_last"]),
        node("Equal", ["special_positions", zero], ["special_is_first"]),
        node("Equal", ["special_positions", "special_last"], ["special_is_last"]),
        node("Or", ["special_is_first", "special_is_last"], ["special_is_special"]),
        node("Not", ["special_is_special"], ["special_is_plain"]),
        node("Cast", ["attention_mask"], ["special_is_real"], to=TensorProto.BOOL),
        node("And", ["special_is_plain", "special_is_real"], ["special_keep_bool"]),
        node("Cast", ["special_keep_bool"], ["special_keep_2d"], to=TensorProto.FLOAT),
        node("Unsqueeze", ["special_keep_2d", last_axis], ["special_keep"]),
        node("Mul", ["special_last", zero], ["special_first"]),
        node("Concat", ["special_first", "special_last"], ["special_pair"], axis=1),
        node("Unsqueeze", ["special_pair", last_axis], ["special_rows"]),
        node("Range", [zero, "special_B", one], ["special_posts"]),
        node("Unsqueeze", ["special_posts", last_axis], ["special_post"]),
        node("Concat", ["special_post", "special_post"], ["special_post_pair"], axis=1),
        node("Unsqueeze", ["special_post_pair", last_axis], ["special_post_rows"]),
        node("Concat", ["special_post_rows", "special_rows"], ["special_at"], axis=2),
    ]
    readers: dict[str, list] = {}
    for matmul in graph.node:
        if matmul.name in nodes:
            readers.setdefault(matmul.input[0], []).append(matmul)
    after: dict[str, list] = {}  # nodes to insert after each MatMul
    before: dict[str, list] = {}  # nodes to insert before the first reader of an input
    for k, (tensor, group) in enumerate(readers.items()):
        kept, rows = f"special_{k}_kept", f"special_{k}_rows"
        before[group[0].name] = [
            node("Mul", [tensor, "special_keep"], [kept]),
            node("GatherND", [tensor, "special_rows"], [rows], batch_dims=1),
        ]
        for matmul in group:
            weight = f"{matmul.name}_special_weight"
            graph.initializer.append(
                numpy_helper.from_array(numpy_helper.to_array(weights[matmul.input[1]]), weight)
            )
            output, plain = matmul.output[0], matmul.output[0] + "_plain_rows"
            matmul.input[0], matmul.output[0] = kept, plain
            after[matmul.name] = [
                node("MatMul", [rows, weight], [output + "_special"], matmul.name + "_special"),
                node("ScatterND", [plain, "special_at", output + "_special"], [output]),
            ]
    ordered = list(prologue)
    for existing in graph.node:
        ordered += before.get(existing.name, []) + [existing] + after.get(existing.name, [])
    graph.ClearField("node")
    graph.node.extend(ordered)
    onnx.save(model, str(target))


def special_tokens_apart(ratio: float):
    """Dynamic int8 (no smoothing) with the <s> and </s> rows quantised apart, in the
    MatMuls whose inputs peak over ``ratio`` times higher in those rows than elsewhere on
    the validation posts (0: all of them)."""

    def build(fp32: Path, target: Path, source: Path, calibration: list[str]) -> None:
        from socialcare.runtime.tokens import TokenBatcher
        from training.export import _encoder_matmuls
        from training.smoothquant import quantize_smoothed

        info = json.loads((source / "socialcare.json").read_text(encoding="utf-8"))
        tokens = TokenBatcher.for_model(source, info)
        ids, _ = tokens.encode(calibration)
        batches = [(i, m) for _, i, m in tokens.batches(ids, batch_size=32)]
        nodes = _encoder_matmuls(fp32)
        peaks = special_token_maxima(fp32, nodes, batches)
        chosen = {name for name in nodes if peaks[name][0] > ratio * peaks[name][1]}
        print(f"{len(chosen)} of {len(nodes)} MatMuls get the special rows apart", flush=True)
        with tempfile.TemporaryDirectory() as scratch:
            graph = Path(scratch) / "apart.onnx"
            special_rows_apart(fp32, graph, chosen)
            apart = [f"{name}_special" for name in chosen]
            quantize_smoothed(graph, target, [*nodes, *apart])

    return build


VARIANTS = {
    "dynamic, per-tensor activations": lambda fp32, target, *_: dynamic(fp32, target),
    "dynamic, FFN output kept fp32": lambda fp32, target, *_: dynamic(fp32, target, True),
    "block-wise (MatMulNBits)": lambda fp32, target, *_: block_wise(fp32, target),
    "SmoothQuant α 0.5 + dynamic": smoothquant((0.5,), flip_budget=1.0),
    "SmoothQuant α 0.8 + dynamic": smoothquant((0.8,), flip_budget=1.0),
    "SmoothQuant α 0.8 + dynamic, down-projections block-wise": smoothquant(
        (0.8,), flip_budget=-1.0
    ),
    "SmoothQuant, α of 0.7/0.8/0.9 chosen on validation (training's)": smoothquant(ALPHAS),
    "static QDQ (MinMax on 300 validation posts)": static_qdq(),
    "SmoothQuant α 0.8 + static QDQ": static_qdq(0.8),
    "dynamic, <s> and </s> rows quantised apart in every MatMul": special_tokens_apart(0.0),
    "dynamic, <s> and </s> rows apart where they peak 1.5x the rest": special_tokens_apart(1.5),
}
# Not a graph: torch under bf16 autocast (AVX512_BF16), judged the same way.
BF16 = "torch, bf16 autocast"


def with_int8(source: Path, scratch: Path, build, calibration: list[str]) -> Path:
    """A copy of the model directory (links) whose model.int8.onnx is built by ``build``."""
    copy = scratch / "model"
    copy.mkdir()
    source = source.resolve()  # the links must work from the scratch folder
    for item in source.iterdir():
        if item.name != ONNX_FILES[ONNX_INT8]:
            (copy / item.name).symlink_to(item)
    build(source / ONNX_FILES[ONNX_FP32], copy / ONNX_FILES[ONNX_INT8], source, calibration)
    return copy


def render(meta: dict, rows: dict) -> str:
    """The results table (markdown) of a run's ``meta`` and ``rows``."""
    lines = [
        f"Int8 variants of {meta['model']}, {meta['date']}; {meta['posts']} posts "
        "(seed validation + test).",
        "",
        *(
            [f"Rerun: {', '.join(meta['rows_rerun'])}; other rows from {meta['rows_from']}.", ""]
            if "rows_rerun" in meta
            else []
        ),
        "| variant | max abs logit diff vs fp32 | flipped intent labels / sentiments "
        "| worst macro-F1 loss, validation | worst loss, test "
        "| gate on validation ∪ test: loss, intent / sentiment flips | passes "
        "| texts/s (× fp32) | one post p50 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        pace = row["speed"]
        cells = ["-"] * 6
        if "worst_drop" in row:
            drops, verdict = row["worst_drop"], row["gate"]
            cells = [
                f"{row['max_abs_logit_diff']:.2f}",
                f"{row['flipped_intent_labels']} / {row['flipped_sentiments']}",
                f"{100 * drops['validation']['points']:.2f} ({drops['validation']['where']})",
                f"{100 * drops['test']['points']:.2f} ({drops['test']['where']})",
                f"{100 * verdict['worst_loss']:.2f}, {verdict['intent_flips']:.2%} / "
                f"{verdict['sentiment_flips']:.2%}",
                "yes" if verdict["passed"] else "no",
            ]
        lines.append(
            f"| {name} | {' | '.join(cells)} | {pace['texts_per_s_32']:.0f} "
            f"({pace['texts_per_s_32'] / row['fp32_texts_per_s_32']:.2f}) "
            f"| {pace['single_p50_ms']:.1f} ms |"
        )
    lines += ["", "× fp32: against ONNX fp32's speed in the run that measured the row."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="registered model tag (default: production, else newest)")
    parser.add_argument(
        "--only",
        nargs="+",
        help="only the variants whose names contain these; the other rows of the last "
        "results are kept",
    )
    args = parser.parse_args(argv)

    from socialcare.core.arrays import encode_posts
    from socialcare.runtime.resolver import resolve_model
    from training.runtimes import calibrate, gate, score_table, worst_drop

    ref = resolve_model(args.model)
    tag, source = ref.tag, ref.directory
    if not (source / ONNX_FILES[ONNX_FP32]).exists():
        parser.error(f"{tag}: no {ONNX_FILES[ONNX_FP32]}; train or export it first")
    splits = {
        split: encode_posts(load_posts([paths.seed_split(split)]))
        for split in ("validation", "test")
    }
    validation, test = splits["validation"], splits["test"]
    texts = validation.texts + test.texts
    parents = validation.parents + test.parents  # replies are read with their parent
    fp32 = Predictor(source, runtime=ONNX_FP32)
    reference = fp32.logits(texts, parents)
    langs = validation.langs + test.langs
    reference_decisions = fp32.decision.decide(*reference, langs)
    # ONNX fp32 calibrated once: it stands for torch fp32 (the export checked them equal).
    calibrated_fp32 = dataclasses.replace(calibrate(source, splits, ONNX_FP32), runtime=TORCH)
    rows = {"onnx fp32 (reference)": {"speed": speed(fp32, texts)}}

    def judge(name: str, predictor: Predictor, candidate_calibrated) -> None:
        """The variant's row: drift and flips under fp32's thresholds, the gate, speed."""
        predictor.decision = fp32.decision  # flips under the same thresholds as fp32
        logits = predictor.logits(texts, parents)
        decisions = predictor.decision.decide(*logits, langs)
        calibrated = {TORCH: calibrated_fp32, ONNX_INT8: candidate_calibrated}
        compared = score_table(calibrated)
        rows[name] = {
            "max_abs_logit_diff": float(
                max(np.abs(logits[i] - reference[i]).max() for i in (0, 1))
            ),
            "flipped_intent_labels": int(
                (decisions.intent_pred != reference_decisions.intent_pred).sum()
            ),
            "flipped_sentiments": int((logits[1].argmax(1) != reference[1].argmax(1)).sum()),
            "worst_drop": {
                split: dict(zip(("points", "where"), drop, strict=True))
                for split in ("validation", "test")
                for drop in [worst_drop(compared, ONNX_INT8, split)]
            },
            "gate": gate(calibrated, splits)[ONNX_INT8],
            "speed": speed(predictor, texts),
        }
        print(json.dumps(rows[name], indent=1), flush=True)

    for name, build in VARIANTS.items():
        if args.only and not any(word in name for word in args.only):
            continue
        print(f"{name}...", flush=True)
        with tempfile.TemporaryDirectory() as scratch:
            directory = with_int8(source, Path(scratch), build, validation.texts)
            judge(
                name,
                Predictor(directory, runtime=ONNX_INT8),
                calibrate(directory, splits, ONNX_INT8),
            )
    if not args.only or any(word in BF16 for word in args.only):
        import torch

        print(f"{BF16}...", flush=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            judge(BF16, Predictor(source, runtime=TORCH), calibrate(source, splits, TORCH))

    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "model": tag, "posts": len(texts)}
    # Each row's speed is compared with fp32's in the same run (the machine is shared).
    fp32_now = rows["onnx fp32 (reference)"]["speed"]["texts_per_s_32"]
    for row in rows.values():
        row["fp32_texts_per_s_32"] = fp32_now
    if args.only and RESULTS.with_suffix(".json").exists():
        # Rows not rerun come from the last run (same model only), in the table's order,
        # each with the fp32 speed of the run that measured it.
        last = json.loads(RESULTS.with_suffix(".json").read_text(encoding="utf-8"))
        if last["meta"]["model"] == tag:
            fp32_then = last["variants"]["onnx fp32 (reference)"]["speed"]["texts_per_s_32"]
            kept = {
                name: {"fp32_texts_per_s_32": fp32_then} | row
                for name, row in last["variants"].items()
                if name not in rows
            }
            order = ["onnx fp32 (reference)", *VARIANTS, BF16]
            merged = {**kept, **rows}
            rows = {name: merged[name] for name in order if name in merged}
            meta["rows_rerun"] = [name for name in rows if name not in kept]
            meta["rows_from"] = last["meta"]["date"]
    table = render(meta, rows)
    print("\n" + table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.with_suffix(".md").write_text(table, encoding="utf-8")
    RESULTS.with_suffix(".json").write_text(
        json.dumps({"meta": meta, "variants": rows}, indent=2) + "\n", encoding="utf-8"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
