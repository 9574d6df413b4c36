"""`socialcare run`: the main job, from the shipped data to a serving model."""

from dataclasses import dataclass

from serving.commands import ServeOptions, run_serve
from socialcare.cli import data
from socialcare.core.options import option
from training import commands as training_commands
from training.config import RECIPE_GRID, TrainOptions
from training.promote import PromoteOptions, run_promote

KINDS = ("baseline", "finetune")


@dataclass
class RunOptions:
    """The main job: validate the shipped data, train and register the baseline and the
    default fine-tuned model unless models of those kinds are registered already and were
    trained on the same data, compare their scores, promote the fine-tuned model if there
    is no production model yet, and serve it."""

    retrain: bool = option(False, help="train again even if up-to-date models are registered")
    serve: bool = option(True, help="end by serving the production model (--no-serve: stop)")
    port: int = option(3000, help="port of the service")


@dataclass(frozen=True)
class Registered:
    """The newest registered model of a kind: its tag and the hash of its training data."""

    tag: str
    train_data_sha256: str | None  # None for a model registered without provenance


def retrain_reason(
    kind: str, data_sha256: str, newest: Registered | None, forced: bool = False
) -> str | None:
    """Why the main job must train a model of ``kind``, or None when ``newest`` will do.

    ``data_sha256``: the hash of the data it would train on now (`training.report.data_hash`
    over `TrainOptions.train_files`, as provenance records it).
    """
    if forced:
        return "--retrain was given"
    if newest is None:
        return f"no {kind} model is registered"
    if newest.train_data_sha256 != data_sha256:
        recorded = (newest.train_data_sha256 or "not recorded")[:12]
        return (
            f"the training data changed since {newest.tag} was trained "
            f"(sha256 {recorded} then, {data_sha256[:12]} now)"
        )
    return None


def run_main_job(opts: RunOptions) -> int:
    # Heavy imports (torch, bentoml) wait until the job runs: `--help` stays fast.
    from socialcare.core import paths
    from socialcare.runtime.registry import list_models, production_model
    from training.report import data_hash
    from training.train import print_result, train

    print("== validate data/")
    if data.run_validate(data.ValidateOptions(paths=[paths.DATA_DIR])) != 0:
        return 1
    print("\n== seed data")
    data.run_stats(data.StatsOptions())
    registered = list_models()
    for kind in KINDS:
        # The learning rates chosen for the bundled data (no search: one training).
        lr, head_lr = RECIPE_GRID[0]
        train_opts = TrainOptions(kind=kind, learning_rate=lr, head_learning_rate=head_lr)
        model = next((m for m in registered if m.info.labels.get("kind") == kind), None)
        newest = None
        if model is not None:
            newest = Registered(str(model.tag), model.info.metadata.get("train_data_sha256"))
        reason = retrain_reason(kind, data_hash(train_opts.train_files()), newest, opts.retrain)
        if reason is None:
            print(f"\n== {kind}: {newest.tag} was trained on this data (--retrain to train again)")
            continue
        print(f"\n== train {kind}: {reason}")
        print_result(train(train_opts))
    print("\n== registered models")
    training_commands.run_models(training_commands.ModelsOptions())
    if production_model() is None:
        finetuned = next(m for m in list_models() if m.info.labels.get("kind") == "finetune")
        print(f"\n== promote {finetuned.tag} (no production model yet)")
        if run_promote(PromoteOptions(candidate=str(finetuned.tag))) != 0:
            return 1
    if not opts.serve:
        return 0
    print(
        f"\n== serve on http://127.0.0.1:{opts.port} (Ctrl-C stops it); from another shell:\n"
        f"curl -s -X POST http://127.0.0.1:{opts.port}/predict "
        "-H 'Content-Type: application/json' \\\n"
        """  -d '{"posts": [{"text": "Varför har ingen svarat på min skadeanmälan?"}]}'\n"""
    )
    return run_serve(ServeOptions(port=opts.port))
