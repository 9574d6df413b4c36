"""Options of `socialcare train` and `socialcare evaluate` (typed, with help texts)."""

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from socialcare.core import paths
from socialcare.core.limits import MAX_LENGTH
from socialcare.core.options import option
from socialcare.core.records import load_posts
from socialcare.core.schema import Post
from socialcare.runtime.registry import MODEL_NAME
from training.backbone import DEFAULT_BASE_MODEL
from training.calibration import DEFAULT_BETAS, MAX_FALSE_ALARM_RATE, ThresholdRule

# (encoder, heads) peak learning rates tried, each in a full training, when
# --learning-rate is not given; the first is the one chosen for the bundled data, which
# `socialcare run` trains with directly.
RECIPE_GRID = ((8e-5, 2e-3), (3e-5, 1e-3))
DEFAULT_HEAD_LEARNING_RATE = 2e-3
# Below this many reviewed posts a held-out share would be too small to judge anything.
MIN_REVIEWED_TO_HOLD_OUT = 20


@dataclass
class TrainOptions:
    """Train a classifier on labelled posts, calibrate it and tune its thresholds on
    validation, evaluate it on validation and test, and register it in the model store.

    Options come from the command line, or from a JSON file (--config) whose keys are
    these option names; command-line options override the file.

    Without --learning-rate, the learning rate is chosen on validation: the model is
    trained once per pair of RECIPE_GRID (3 epochs each, the best epoch kept) and the
    better one on validation is kept. No single rate served every corpus: 8e-5 suits the
    bundled data and SENTIPOLC, 3e-5 swe-sentiment (benchmarks/README.md). `socialcare
    run` passes the rate chosen for the bundled data and trains once.
    """

    kind: Literal["finetune", "baseline"] = option(
        "finetune", help="fine-tune a transformer, or the TF-IDF + logistic-regression baseline"
    )
    config: Path | None = option(None, help="JSON file of options for this experiment")
    train: list[Path] = option([paths.seed_split("train")], help="training JSONL files or folders")
    train_sample: int | None = option(
        None,
        help="train on at most this many posts of the --train files (a fixed random "
        "sample; the reviewed rounds always train in full)",
    )
    labelled_rounds: bool = option(
        True, help="also train on every reviewers' round file in --labelled-dir"
    )
    labelled_dir: Path = option(paths.LABELLED_DIR, help="folder of the labelled round files")
    reviewed_weight: float | None = option(
        1.0,
        help="how much a post from a reviewers' round counts in training against a post of "
        "the --train files (socialcare adapt chooses it on held-out reviewed posts; "
        "benchmarks/results/learning_curve.md shows what it chose)",
    )
    reviewed_holdout: float = option(
        0.25,
        help="share of reviewed posts kept out of training: thresholds and temperatures "
        f"are fitted on them beside validation (when {MIN_REVIEWED_TO_HOLD_OUT}+ are reviewed)",
    )
    reviewed_decision_share: float | None = option(
        None,
        help="share of the decision's fit (temperatures, thresholds) the held-out reviewed "
        "posts make up, 1 for them alone; default: each counts as a validation post. More "
        "follows the new page's traffic and loses on the old (the promotion gate judges)",
    )
    validation: list[Path] = option(
        [paths.seed_split("validation")],
        help="validation files: epoch choice, calibration, thresholds",
    )
    test: list[Path] = option(
        [paths.seed_split("test")], help="test files: scored once at the end, never used to choose"
    )
    base_model: str = option(DEFAULT_BASE_MODEL, help="Hugging Face model id or local path")
    text_prefix: str | None = option(
        None, help="text put before each post; default 'query: ' for e5 models, else none"
    )
    output: Path | None = option(None, help="model directory (default: artifacts/models/<run>)")
    # Chosen on data v2's validation split within the main job's 15 minutes on 2 cores
    # (frozen layers, a fourth epoch, shorter inputs: benchmarks/README.md).
    epochs: float = option(3.0, help="maximum training epochs (early stopping may end sooner)")
    learning_rate: float | None = option(
        None,
        help="peak learning rate (linear decay after warm-up); default: each pair of "
        "RECIPE_GRID (8e-5 with heads at 2e-3, 3e-5 with heads at 1e-3) is trained in full "
        "and the one with the better validation score kept (twice the training time)",
    )
    head_learning_rate: float | None = option(
        None, help="peak learning rate of the two heads; default: 2e-3, or the grid's pair"
    )
    batch_size: int = option(16, help="posts per training step")
    max_length: int = option(
        MAX_LENGTH, help="tokens per post (a reply with its parent); longer posts are truncated"
    )
    warmup_ratio: float = option(0.1, help="share of training steps spent warming up")
    weight_decay: float = option(0.01, help="AdamW weight decay")
    patience: int = option(2, help="epochs without validation gain before stopping")
    freeze_embeddings: bool = option(True, help="keep the word-embedding table frozen")
    frozen_layers: int = option(0, help="lowest transformer layers kept as pre-trained")
    precision: Literal["auto", "bf16", "fp32"] = option(
        "auto",
        help="training arithmetic: auto = bf16 autocast where the CPU or GPU does bf16 "
        "natively (about 1.6x faster on AVX512-BF16 CPUs), else fp32; weights stay fp32",
    )
    per_language_thresholds: bool = option(
        False,
        help="tune thresholds per language too (off: on a few hundred validation posts per "
        "language they chase noise; benchmarks/results/decision_layer.md)",
    )
    threshold_betas: dict[str, float] = option(
        dict(DEFAULT_BETAS), help="F-beta per intent for threshold tuning (config file only)"
    )
    max_false_alarm_rate: float | None = option(
        MAX_FALSE_ALARM_RATE,
        help="no intent threshold may flag more than this share of validation posts "
        "without the intent",
    )
    seed: int = option(13, help="random seed")
    register: bool = option(True, help="register the trained model in the BentoML model store")
    name: str = option(MODEL_NAME, help="model name in the store")
    parent: str | None = option(
        None,
        help="registered tag (or directory) of the model --base-model continues: only its "
        "layers above --frozen-layers and its heads learn (set by socialcare adapt)",
    )

    teacher: str | None = option(
        None,
        help="registered tag (or directory) of the fine-tuned model --base-model is: the "
        "model trained is its student of --student-layers layers, learning its soft labels "
        "(set by socialcare distill)",
    )
    student_layers: int = option(6, help="a student's transformer layers (with --teacher)")
    distill_temperature: float = option(2.0, help="softens the logits a student learns from")
    hard_label_weight: float = option(
        0.5, help="share of a student's loss from the posts' labels (the rest: the teacher's)"
    )
    transfer_augment: int = option(
        1, help="teacher-labelled variants per training post a student also learns from"
    )

    def learning_rates(self) -> list[tuple[float, float]]:
        """(encoder, heads) learning rates to train with: one pair, or RECIPE_GRID's to
        choose from on validation when --learning-rate is not given."""
        if self.learning_rate is None:
            return [(lr, self.head_learning_rate or head) for lr, head in RECIPE_GRID]
        return [(self.learning_rate, self.head_learning_rate or DEFAULT_HEAD_LEARNING_RATE)]

    def threshold_rule(self) -> ThresholdRule:
        return ThresholdRule(
            betas=self.threshold_betas,
            max_false_alarm_rate=self.max_false_alarm_rate,
            per_language=self.per_language_thresholds,
            reviewed_share=self.reviewed_decision_share,
        )

    def train_files(self) -> list[Path]:
        """--train, then each labelled round (oldest first) unless --no-labelled-rounds."""
        from socialcare.core.label_store import round_files

        listed = {path.resolve() for path in self.train}
        rounds = round_files(self.labelled_dir) if self.labelled_rounds else []
        return [*self.train, *(path for path in rounds if path.resolve() not in listed)]

    def train_posts(self) -> list[Post]:
        """The posts training learns from (``training_data().posts``)."""
        return self.training_data().posts

    def training_data(self) -> "TrainingData":
        """The training posts with their weights, and the reviewed posts held out.

        One record per (post, annotator), the latest one: a reviewer's correction in a
        later round replaces their earlier label, and a post labelled in any reviewers'
        round loses the labels it had in the --train files (the reviewed label supersedes
        the one the model learnt before); labels of the same post by different reviewers
        all train. Reviewed posts weigh --reviewed-weight, and a --reviewed-holdout share
        of them (chosen by post id, so the same posts for every model) is kept out of
        training. Posts of the validation or test files are left out, wherever they were
        labelled again, so that they stay unseen.
        """
        from socialcare.core.label_store import latest_labels

        held_out = {post.id for post in load_posts([*self.validation, *self.test])}
        listed = {path.resolve() for path in self.train}
        rounds = [path for path in self.train_files() if path.resolve() not in listed]
        reviewed = latest_labels(rounds) if rounds else []
        reviewed_ids = {post.id for post in reviewed}
        base = latest_labels(self.train)
        superseded = sum(post.id in reviewed_ids for post in base)
        if superseded:
            print(
                f"{superseded} training label(s) superseded by reviewers' labels of the same posts"
            )
        unseen = [post for post in [*base, *reviewed] if post.id in held_out]
        if unseen:
            print(
                f"left out {len(unseen)} training record(s) of posts that are in "
                "the validation or test files"
            )
        base = [post for post in base if post.id not in reviewed_ids | held_out]
        if self.train_sample is not None and self.train_sample < len(base):
            import random

            picked = sorted(random.Random(self.seed).sample(range(len(base)), self.train_sample))
            base = [base[i] for i in picked]
        reviewed = [post for post in reviewed if post.id not in held_out]
        kept_out = []
        if len({post.id for post in reviewed}) >= MIN_REVIEWED_TO_HOLD_OUT:
            kept_out = [post for post in reviewed if _share_of(post.id) < self.reviewed_holdout]
            reviewed = [post for post in reviewed if _share_of(post.id) >= self.reviewed_holdout]
        return TrainingData(
            posts=[*base, *reviewed],
            weights=[1.0] * len(base) + [self.reviewed_weight or 1.0] * len(reviewed),
            reviewed_rows=np.arange(len(base) + len(reviewed)) >= len(base),
            reviewed_held_out=kept_out,
        )


@dataclass(frozen=True)
class StartingModel:
    """A fine-tuned model another is trained from (adapt's parent, distill's teacher)."""

    tag: str  # its registered tag, or its directory when unregistered
    directory: Path
    info: dict  # its socialcare.json
    layers: int  # its transformer layers
    name: str  # the store name the new model is registered under: the same as its own


def starting_model(spec: str | None, refusal: str) -> StartingModel:
    """The fine-tuned model ``spec`` names (default: production); ValueError saying
    ``refusal`` (what the command needs) when it is of another kind."""
    import json

    from socialcare.runtime.resolver import model_info, resolve_model

    ref = resolve_model(spec)
    info = model_info(ref.directory)
    if info.get("kind") != "finetune":
        raise ValueError(f"{ref.tag or ref.directory} is a {info.get('kind')} model: {refusal}")
    config = json.loads((ref.directory / "config.json").read_text(encoding="utf-8"))
    registered = ref.tag != str(ref.directory)
    return StartingModel(
        tag=ref.tag,
        directory=ref.directory,
        info=info,
        layers=config["num_hidden_layers"],
        name=ref.tag.split(":")[0] if registered else MODEL_NAME,
    )


def _share_of(post_id: str) -> float:
    """A fixed number in [0, 1) per post id: which reviewed posts are held out."""
    import hashlib

    return int(hashlib.sha256(post_id.encode()).hexdigest()[:8], 16) / 16**8


@dataclass(frozen=True)
class TrainingData:
    posts: list[Post]
    weights: list[float]  # one per post: 1, or --reviewed-weight for reviewed posts
    reviewed_rows: np.ndarray  # (posts,) bool: the post comes from a reviewers' round
    reviewed_held_out: list[Post]  # fit the decision beside validation; judge candidates


@dataclass
class EvaluateOptions:
    """Score a registered model (or a model directory) on labelled posts: per intent,
    per language, sentiment, calibration. Writes metrics.json, plots and a model card."""

    model: str | None = option(
        None,
        help="registered tag, or a model directory (default: the production model, else the "
        "newest)",
    )
    data: list[Path] = option([paths.seed_split("test")], help="labelled JSONL files or folders")
    output: Path | None = option(None, help="report folder (default: artifacts/evaluations/<tag>)")
