"""Quantisation-aware fine-tuning for the fastest int8 kernel (a script, not a test).

    .venv/bin/python benchmarks/qat.py [--model artifacts/models/teacher] [--lr 1e-5 5e-5]

The plain per-tensor dynamic int8 graph (no smoothing) is the fastest the CPU offers,
but it flips many of fp32's decisions. Can a short fine-tuning with that arithmetic
simulated teach the model to live with it? For each learning rate: every encoder Linear
(72) sees its input fake-quantised as ONNX Runtime's DynamicQuantizeLinear does it (uint8,
one asymmetric scale per tensor per call) and its weight per output channel (int8,
symmetric), with straight-through rounding; one epoch over the training posts (with their
parents), learning the original model's own fp32 logits (no labels: the aim is to keep
its answers). Then the model is exported, quantised per tensor, and its decisions on the
validation posts compared with the original fp32 model's, beside the original's plain
and served (SmoothQuant) int8 graphs. Dropout off, embeddings frozen.

The model is a directory with model.onnx, model.int8-smooth.onnx and torch weights (a
training's own). Results: benchmarks/results/qat.{md,json}.
"""

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from results_io import write_results  # noqa: E402  (same folder)

from socialcare.core import paths  # noqa: E402
from socialcare.core.records import load_posts  # noqa: E402

RESULTS = REPO_ROOT / "benchmarks" / "results" / "qat"


class _Round(torch.autograd.Function):
    """Rounds forward, passes gradients through (straight-through estimator)."""

    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


class FakeQuantisedLinear(torch.nn.Module):
    """``linear`` computing with ONNX Runtime's dynamic int8 arithmetic, simulated."""

    def __init__(self, linear: torch.nn.Linear):
        super().__init__()
        self.linear = linear

    def forward(self, x):
        low = torch.clamp(x.detach().min(), max=0)
        high = torch.clamp(x.detach().max(), min=0)
        scale = torch.clamp((high - low) / 255, min=1e-8)
        zero = torch.clamp(torch.round(-low / scale), 0, 255)
        x = (torch.clamp(_Round.apply(x / scale) + zero, 0, 255) - zero) * scale
        w = self.linear.weight
        w_scale = torch.clamp(w.detach().abs().amax(dim=1, keepdim=True) / 127, min=1e-8)
        w = torch.clamp(_Round.apply(w / w_scale), -127, 127) * w_scale
        return torch.nn.functional.linear(x, w, self.linear.bias)


def fine_tune(source: Path, target: Path, batches, reference, lr: float) -> float:
    """One epoch of ``source`` under fake quantisation towards ``reference`` logits; the
    result (plain weights) saved in ``target``. Returns the seconds it took."""
    from socialcare.runtime.model import IntentSentimentModel
    from training.distill import distill_loss

    torch.manual_seed(0)
    model = IntentSentimentModel.load(source)
    model.encoder.set_attn_implementation("eager")
    wrapped = []
    for layer in model.encoder.encoder.layer:
        for parent, name in (
            (layer.attention.self, "query"),
            (layer.attention.self, "key"),
            (layer.attention.self, "value"),
            (layer.attention.output, "dense"),
            (layer.intermediate, "dense"),
            (layer.output, "dense"),
        ):
            setattr(parent, name, FakeQuantisedLinear(getattr(parent, name)))
            wrapped.append((parent, name))
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    model.encoder.get_input_embeddings().weight.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.0)
    model.train()
    started = time.monotonic()
    for step in np.random.default_rng(0).permutation(len(batches)):
        index, input_ids, mask = batches[step]
        out = model(torch.from_numpy(input_ids), torch.from_numpy(mask))
        goal = tuple(torch.from_numpy(r[index]).float() for r in reference)
        loss = distill_loss((out["intent_logits"], out["sentiment_logits"]), goal, None, 1.0, 0.0)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    for parent, name in wrapped:
        setattr(parent, name, getattr(parent, name).linear)
    model.eval().save(target)
    for name in ("tokenizer.json", "tokenizer_config.json", "socialcare.json"):
        shutil.copy(source / name, target / name)
    return time.monotonic() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=REPO_ROOT / "artifacts/models/teacher")
    parser.add_argument("--lr", type=float, nargs="+", default=[1e-5, 5e-5])
    args = parser.parse_args(argv)

    from socialcare.runtime.tokens import TokenBatcher
    from training.export import _encoder_matmuls, _export_fp32
    from training.smoothquant import _graph_logits, flip_shares, quantize_smoothed

    source = args.model
    info = json.loads((source / "socialcare.json").read_text(encoding="utf-8"))
    tokens = TokenBatcher.for_model(source, info)
    train = load_posts([paths.seed_split("train")])
    validation = load_posts([paths.seed_split("validation")])
    train_ids, _ = tokens.encode([p.text for p in train], [p.parent_text for p in train])
    ids, _ = tokens.encode([p.text for p in validation], [p.parent_text for p in validation])
    train_batches = tokens.batches(train_ids, 16)
    batches = list(tokens.batches(ids, 32))
    replies = np.array([bool(p.parent_text) for p in validation])
    reference = _graph_logits(source / "model.onnx", batches, len(ids))
    train_reference = _graph_logits(source / "model.onnx", train_batches, len(train_ids))

    def compare(candidate, against=reference) -> dict:
        every = flip_shares(against, candidate)
        on_replies = flip_shares(*((x[0][replies], x[1][replies]) for x in (against, candidate)))
        return {
            "intent_flips": every[0],
            "sentiment_flips": every[1],
            "reply_intent_flips": on_replies[0],
            "reply_sentiment_flips": on_replies[1],
            "max_abs_logit_diff": float(np.abs(candidate[0] - against[0]).max()),
        }

    rows = {}
    with tempfile.TemporaryDirectory() as scratch:
        plain = Path(scratch) / "plain.onnx"
        quantize_smoothed(source / "model.onnx", plain, _encoder_matmuls(source / "model.onnx"))
        rows["original, plain per-tensor int8"] = compare(_graph_logits(plain, batches, len(ids)))
        served = _graph_logits(source / "model.int8-smooth.onnx", batches, len(ids))
        rows["original, served SmoothQuant int8"] = compare(served)
        for lr in args.lr:
            tuned = Path(scratch) / f"qat-{lr:g}"
            seconds = fine_tune(source, tuned, train_batches, train_reference, lr)
            _export_fp32(tuned, info, tuned / "model.onnx")
            quantize_smoothed(tuned / "model.onnx", plain, _encoder_matmuls(tuned / "model.onnx"))
            own = _graph_logits(tuned / "model.onnx", batches, len(ids))
            int8 = _graph_logits(plain, batches, len(ids))
            rows[f"QAT lr {lr:g}, fp32"] = compare(own)
            rows[f"QAT lr {lr:g}, plain per-tensor int8"] = compare(int8) | {
                "seconds": seconds,
                "against_own_fp32": compare(int8, own),
            }
            print(f"lr {lr:g}: {rows[f'QAT lr {lr:g}, plain per-tensor int8']}", flush=True)

    shown = (
        source.resolve().relative_to(REPO_ROOT)
        if source.resolve().is_relative_to(REPO_ROOT)
        else source
    )
    lines = [
        f"# Quantisation-aware fine-tuning, {time.strftime('%Y-%m-%d %H:%M')}",
        "",
        f"Model `{shown}`; {len(ids)} validation posts ({int(replies.sum())} replies); one "
        "epoch over the training posts per learning rate. Flips of intent decisions "
        "(p = 0.5) and sentiment labels against the original model's fp32 logits.",
        "",
        "| graph | intent flips | sentiment flips | on replies | max logit diff | "
        "against its own fp32 |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        own = row.get("against_own_fp32")
        lines.append(
            f"| {name} | {row['intent_flips']:.2%} | {row['sentiment_flips']:.2%} | "
            f"{row['reply_intent_flips']:.2%} / {row['reply_sentiment_flips']:.2%} | "
            f"{row['max_abs_logit_diff']:.2f} | "
            + (f"{own['intent_flips']:.2%} / {own['sentiment_flips']:.2%}" if own else "-")
            + " |"
        )
    write_results(RESULTS, "\n".join(lines) + "\n", {"model": str(shown), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
