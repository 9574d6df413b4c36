"""Export a fine-tuned model to ONNX (fp32 and int8) and check it against torch.

ONNX Runtime answers one post about 1.7x faster than torch on 2 CPU cores (in
length-sorted batches they are about even), with the same logits (1e-5). Int8
(block-wise, `_quantize_int8`) is about 1.2-1.7x faster again: the encoder's MatMul
weights are int8 with one scale per block of input channels, their inputs quantised per
token and block on the fly. The embedding table (a Gather; 96 M of e5-small's 118 M
parameters) stays fp32, since quantising it drifts the outputs more and saves no time; so
do the attention score products and the two logit heads (a tiny share of the work, whose
error would go straight into the probabilities).

A second int8 graph, SmoothQuant's (training/smoothquant.py), uses ONNX Runtime's
per-tensor dynamic kernel instead (about 2.4x ONNX fp32 for the 12-layer model; 1.9x
with its down-projections block-wise, which it falls back to when the per-tensor
kernel flips too many decisions): faster, but only faithful once the activation
outliers are moved into the weights, so it needs calibration posts (validation).

Int8 is not free: which runtime is served is decided by the quality gate
(training/runtimes.py).

``python -m training.export MODEL_DIR`` exports a model trained before this existed (a
copy, never a registered model in place): it is then served on ONNX fp32, whose logits
match the torch logits its thresholds were tuned on.
"""

import argparse
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from socialcare.runtime.predictor import (
    INFO_FILE,
    ONNX_FILES,
    ONNX_FP32,
    ONNX_INPUTS,
    ONNX_INT8,
    ONNX_INT8_SMOOTH,
    ONNX_OUTPUTS,
    TORCH,
    Decision,
    Predictor,
    sigmoid,
    softmax,
    write_info,
)
from socialcare.runtime.tokens import TokenBatcher

# Opset 17: the first with a LayerNormalization op (one fused kernel instead of six).
OPSET = 17
# ONNX fp32 must reproduce torch's logits: a larger gap means a broken export, not noise.
FP32_TOLERANCE = 1e-3
# Input channels per int8 scale: 128 was as accurate as 32 here and 1.5x faster.
INT8_BLOCK = 128
# Posts for the export checks: both languages, short and long (past max_length), emoji.
CHECK_TEXTS = (
    "Tack för snabb hjälp med skadan!",
    "När får jag besked om min vattenskada? Har väntat i sex veckor nu 😡",
    "Ni höjer alla premier med 50% nästa år, det vet ju alla.",
    "Grazie mille, servizio impeccabile e velocissimo!",
    "Qualcuno sa se la polizza casa copre la grandine?",
    "ahah il mio gatto ha più pazienza del vostro call center 😂😂",
    "ok",
    " ".join(["Jag ringde igen idag och fick vänta i en timme utan att någon svarade."] * 20),
)


class LogitsOnly(torch.nn.Module):
    """The model with a tuple of the two logit tensors as output, as the ONNX graph has."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        return out["intent_logits"], out["sentiment_logits"]


def _export_fp32(model_dir: Path, info: dict, target: Path) -> None:
    """Trace the model on two posts of different lengths, batch and sequence left dynamic.

    The TorchScript exporter (``dynamo=False``), although torch >= 2.9 deprecates it: for
    this encoder it gives the same logits (1e-6) as the torch.export-based one, runs at
    least as fast on ONNX Runtime here, and exports in 1 s instead of 15 (a tiny test model)
    or 7 s instead of 14 (e5-small). Its one trace-time constant (transformers' mask
    padding check, kv length == mask length) holds for every input of an encoder.
    """
    from socialcare.runtime.model import IntentSentimentModel

    model = IntentSentimentModel.load(model_dir)
    # Eager attention adds the padding mask to the scores (one Add); SDPA's export masks
    # them with Where and IsNaN over every score instead, 15% of the int8 graph's time
    # (the SmoothQuant teacher answered 27% more posts/s without them). Same logits.
    model.encoder.set_attn_implementation("eager")
    tokens = TokenBatcher.for_model(model_dir, info)
    ids, _ = tokens.encode(list(CHECK_TEXTS[:2]))
    ((_, input_ids, attention_mask),) = tokens.batches(ids, batch_size=2)
    dynamic = {name: {0: "batch", 1: "sequence"} for name in ONNX_INPUTS}
    dynamic |= {name: {0: "batch"} for name in ONNX_OUTPUTS}
    with warnings.catch_warnings():
        # The deprecation notice and the trace-time constant explained above, and a caution
        # about negative indices in advanced indexing (the graph indexes with aranges only).
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", "Exporting aten::index operator", UserWarning)
        torch.onnx.export(
            LogitsOnly(model).eval(),
            (torch.from_numpy(input_ids), torch.from_numpy(attention_mask)),
            str(target),
            dynamo=False,
            opset_version=OPSET,
            input_names=list(ONNX_INPUTS),
            output_names=list(ONNX_OUTPUTS),
            dynamic_axes=dynamic,
        )


def _encoder_matmuls(path: Path) -> list[str]:
    """The MatMul nodes with a weight matrix, the logit heads' excepted.

    Named explicitly (``nodes_to_quantize``) because the quantiser rewrites each Gemm into
    a MatMul under a new name, which ``nodes_to_exclude`` would then miss.
    """
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    weights = {initializer.name for initializer in graph.initializer}
    producer = {output: node for node in graph.node for output in node.output}
    heads, pending = set(), [output.name for output in graph.output]
    while pending:  # back from the logits through bias Adds to the heads' MatMul/Gemm
        node = producer.get(pending.pop())
        if node is not None and node.op_type in ("Gemm", "MatMul", "Add"):
            heads.add(node.name)
            pending.extend(node.input if node.op_type == "Add" else ())
    return [
        node.name
        for node in graph.node
        if node.op_type == "MatMul" and node.input[1] in weights and node.name not in heads
    ]


def _quantize_int8(fp32: Path, target: Path, nodes: Sequence[str] | None = None) -> dict:
    """Block-wise int8 of the encoder's MatMul weights (ONNX Runtime's MatMulNBits).

    Each block of INT8_BLOCK input channels of a weight column has its own scale, and at run
    time each token's activations are quantised per block as well (accuracy level 4: int8
    dot products). e5's activation outliers, single tokens far above the rest, then cost
    precision in their own block only. The per-tensor dynamic quantisation tried first
    (one activation scale per MatMul call) moved the default model's logits by up to 5.5
    and cost up to 2.3 macro-F1 points on validation; this one moves them by at most 0.5
    (benchmarks/results/int8_variants.md).

    ``nodes``: the MatMuls to quantise (default: all of the encoder's); the others stay as
    they are (SmoothQuant's graph sends only its down-projections here).
    """
    import logging

    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    nodes = list(nodes) if nodes is not None else _encoder_matmuls(fp32)
    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)
    quantizer = MatMulNBitsQuantizer(
        str(fp32),
        bits=8,
        block_size=INT8_BLOCK,
        is_symmetric=True,
        accuracy_level=4,
        nodes_to_include=nodes,
    )
    quantizer.process()
    quantizer.model.save_model_to_file(str(target), use_external_data_format=False)
    return {
        "method": "onnxruntime MatMulNBits, bits 8, accuracy level 4",
        "weights": f"int8 symmetric, one scale per {INT8_BLOCK} input channels of each column",
        "activations": f"int8, dynamic, per token and block of {INT8_BLOCK}",
        "quantised": f"{len(nodes)} encoder MatMuls",
        "kept_fp32": "embeddings, attention score products, layer norms, logit heads",
    }


def _max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Largest |a - b|, equal entries counting 0 (an untrained head's logits are -inf in both)."""
    with np.errstate(invalid="ignore"):  # -inf - -inf, masked out just below
        return float(np.max(np.where(a == b, 0.0, np.abs(a - b)), initial=0.0))


def check_runtimes(model_dir: Path, info: dict, texts: Sequence[str] = CHECK_TEXTS) -> dict:
    """How far the ONNX runtimes' logits and probabilities (temperature 1) are from torch's."""
    reference = Predictor(model_dir, runtime=TORCH, info=info).logits(texts)
    checks = {"texts": len(texts)}
    for runtime in (ONNX_FP32, ONNX_INT8, ONNX_INT8_SMOOTH):
        if not (model_dir / ONNX_FILES[runtime]).exists():
            continue
        intent, sentiment = Predictor(model_dir, runtime=runtime, info=info).logits(texts)
        checks[runtime] = {
            "max_abs_logit_diff": max(
                _max_abs_diff(intent, reference[0]), _max_abs_diff(sentiment, reference[1])
            ),
            "max_abs_intent_prob_diff": float(
                np.abs(sigmoid(intent) - sigmoid(reference[0])).max()
            ),
            "max_abs_sentiment_prob_diff": float(
                np.abs(softmax(sentiment) - softmax(reference[1])).max()
            ),
            "same_sentiment_argmax": float(np.mean(sentiment.argmax(1) == reference[1].argmax(1))),
        }
    return checks


def export_onnx(
    model_dir: Path,
    info: dict,
    calibration: tuple[Sequence[str], Sequence[str | None]] | None = None,
) -> dict:
    """Write ``model.onnx`` (fp32), ``model.int8.onnx`` (block-wise) and, given
    ``calibration`` posts (validation texts and the posts they reply to), the SmoothQuant
    int8 graph into a fine-tuned model directory.

    The directory holds the saved model and tokenizer; ``info`` is its socialcare.json, in
    memory (text prefix, max length, labels). Each graph is checked against the torch
    model on CHECK_TEXTS; an fp32 graph whose logits differ by more than FP32_TOLERANCE
    raises. Returns what socialcare.json
    records under ``onnx``: file names, runtime and exporter versions, quantisation, checks.
    """
    import onnxruntime

    from training.smoothquant import quantize_int8_smooth

    model_dir = Path(model_dir)
    files = {runtime: model_dir / name for runtime, name in ONNX_FILES.items()}
    # Written under another name, then renamed (atomic): a half-written file never looks
    # like an exported model.
    partial = {runtime: path.with_name(path.name + ".partial") for runtime, path in files.items()}
    _export_fp32(model_dir, info, partial[ONNX_FP32])
    os.replace(partial[ONNX_FP32], files[ONNX_FP32])
    quantization = _quantize_int8(files[ONNX_FP32], partial[ONNX_INT8])
    os.replace(partial[ONNX_INT8], files[ONNX_INT8])
    smooth = None
    files[ONNX_INT8_SMOOTH].unlink(missing_ok=True)  # an earlier export's, calibrated elsewhere
    if calibration is not None:
        texts, parents = calibration
        fp32, target = files[ONNX_FP32], partial[ONNX_INT8_SMOOTH]
        smooth = quantize_int8_smooth(model_dir, info, fp32, target, texts, parents)
        os.replace(partial[ONNX_INT8_SMOOTH], files[ONNX_INT8_SMOOTH])

    checks = check_runtimes(model_dir, info)
    gap = checks[ONNX_FP32]["max_abs_logit_diff"]
    if not gap <= FP32_TOLERANCE:
        raise RuntimeError(
            f"{files[ONNX_FP32]}: ONNX fp32 logits differ from torch's by {gap:.2g} "
            f"(> {FP32_TOLERANCE}): the export is broken; serve runtime 'torch' meanwhile"
        )
    return {
        "files": {r: name for r, name in ONNX_FILES.items() if files[r].exists()},
        "runtime": f"onnxruntime {onnxruntime.__version__}",
        "exporter": f"torch.onnx (TorchScript) {torch.__version__}",
        "opset": OPSET,
        "inputs": list(ONNX_INPUTS),
        "outputs": list(ONNX_OUTPUTS),
        "int8_quantization": quantization,
        "int8_smooth_quantization": smooth,
        "checks": checks,
    }


def _validation_posts(info: dict) -> tuple[list[str], list[str | None]] | None:
    """The model's validation posts, where its files are still here: SmoothQuant's
    calibration (without them only the block-wise int8 graph is written)."""
    from socialcare.core.records import load_posts

    files = [Path(p) for p in info.get("provenance", {}).get("validation_files", [])]
    if not files or not all(p.exists() for p in files):
        return None
    posts = load_posts(files)
    return [p.text for p in posts], [p.parent_text for p in posts]


def main(argv: Sequence[str] | None = None) -> int:
    """Export a model directory (a copy; never one inside the model store) in place."""
    parser = argparse.ArgumentParser(prog="python -m training.export", description=__doc__)
    parser.add_argument("model_dir", type=Path, help="fine-tuned model directory")
    args = parser.parse_args(argv)
    info_path = args.model_dir / INFO_FILE
    if not info_path.exists():
        parser.error(f"{args.model_dir}: no {INFO_FILE}; not a socialcare model directory")
    info = json.loads(info_path.read_text(encoding="utf-8"))
    if info.get("kind") != "finetune":
        parser.error(f"{info_path}: kind: {info.get('kind')!r}; only fine-tuned models export")
    record = export_onnx(args.model_dir, info, _validation_posts(info))
    decision = Decision(**info.pop("decision", {}))
    write_info(args.model_dir, dict(info, onnx=record), decision)
    print(json.dumps(record["checks"], indent=2))
    print(f"{args.model_dir}: exported; served on {Predictor(args.model_dir).runtime}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
