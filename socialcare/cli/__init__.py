"""`socialcare`: the one entry point of every stage (validate → split → train → ... → serve)."""

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass

from serving.commands import ServeOptions, run_serve
from serving.dashboard import DashboardOptions, run_dashboard
from socialcare.cli import data
from socialcare.cli.label import LabelOptions, run_label
from socialcare.cli.main_job import RunOptions, run_main_job
from socialcare.cli.predict import (
    PredictOptions,
    SparkPredictOptions,
    run_predict,
    run_spark_predict,
)
from socialcare.core.options import add_options, config_defaults, parse_options
from socialcare.core.records import DataError
from training import commands as training_commands
from training.adapt import AdaptOptions
from training.config import EvaluateOptions, TrainOptions
from training.distill import DistillOptions
from training.promote import PromoteOptions, run_promote


@dataclass(frozen=True)
class Command:
    options: type
    run: Callable[[object], int]


COMMANDS: dict[str, Command] = {
    "validate": Command(data.ValidateOptions, data.run_validate),
    "split": Command(data.SplitOptions, data.run_split),
    "stats": Command(data.StatsOptions, data.run_stats),
    "agreement": Command(data.AgreementOptions, data.run_agreement),
    "train": Command(TrainOptions, lambda opts: _train(opts)),
    "evaluate": Command(EvaluateOptions, training_commands.run_evaluate),
    "models": Command(training_commands.ModelsOptions, training_commands.run_models),
    "predict": Command(PredictOptions, run_predict),
    "spark-predict": Command(SparkPredictOptions, run_spark_predict),
    "adapt": Command(AdaptOptions, lambda opts: _adapt(opts)),
    "distill": Command(DistillOptions, lambda opts: _distill(opts)),
    "promote": Command(PromoteOptions, run_promote),
    "serve": Command(ServeOptions, run_serve),
    "dashboard": Command(DashboardOptions, run_dashboard),
    "label": Command(LabelOptions, run_label),
    "run": Command(RunOptions, run_main_job),
}


def _train(opts: TrainOptions) -> int:
    from training.train import run_train  # torch and transformers load only when training

    return run_train(opts)


def _adapt(opts) -> int:
    from training.adapt import run_adapt  # torch and transformers load only when adapting

    return run_adapt(opts)


def _distill(opts) -> int:
    from training.distill import run_distill  # torch and transformers load only when distilling

    return run_distill(opts)


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(prog="socialcare", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    subparsers = {}
    for name, command in COMMANDS.items():
        doc = (command.options.__doc__ or "").strip()
        summary = " ".join(doc.split("\n\n")[0].split())
        subparsers[name] = sub.add_parser(
            name,
            help=summary,
            description=doc,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_options(subparsers[name], command.options)
    return parser, subparsers


def main(argv: list[str] | None = None) -> int:
    parser, subparsers = build_parser()
    args = parser.parse_args(argv)
    command = COMMANDS[args.command]
    try:
        if getattr(args, "config", None) is not None:
            # An experiment file sets defaults; options given on the command line still win.
            file_values = config_defaults(command.options, args.config)
            subparsers[args.command].set_defaults(**file_values)
            args = parser.parse_args(argv)
        return command.run(parse_options(command.options, args))
    except (DataError, LookupError, ValueError, FileNotFoundError) as err:
        # Bad input is reported, never a traceback.
        print(f"socialcare {args.command}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
