"""`socialcare`: the one entry point of every stage (validate → split → train → ... → serve)."""

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass

from socialcare import data_commands as data
from socialcare.options import add_options, parse_options
from socialcare.records import DataError


@dataclass(frozen=True)
class Command:
    options: type
    run: Callable[[object], int]


COMMANDS: dict[str, Command] = {
    "validate": Command(data.ValidateOptions, data.run_validate),
    "split": Command(data.SplitOptions, data.run_split),
    "stats": Command(data.StatsOptions, data.run_stats),
    "agreement": Command(data.AgreementOptions, data.run_agreement),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="socialcare", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        doc = (command.options.__doc__ or "").strip()
        summary = " ".join(doc.split("\n\n")[0].split())
        add_options(sub.add_parser(name, help=summary, description=doc), command.options)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = COMMANDS[args.command]
    try:
        return command.run(parse_options(command.options, args))
    except DataError as err:
        # Bad input is reported, never a traceback.
        print(f"socialcare {args.command}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
