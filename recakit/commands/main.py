"""`recakit` on the command line: one sub-command group per module.

Each module listed in COMMAND_MODULES defines `add_commands(subparsers)`, which adds its
commands and sets `run=<function(args) -> int | None>` on each parser.
"""
import argparse
import sys
from importlib import import_module

COMMAND_MODULES = [
    "recakit.bench.geneval",    # recakit geneval prompts | sample | score
    "recakit.bench.dpg",        # recakit dpg ...
    "recakit.toy.shapes",     # recakit shapes render
    "recakit.training",   # recakit train
    "recakit.toy.train_base",  # recakit toy train-base
    "recakit.toy.reproduce",  # recakit reproduce --preset toy
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recakit", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        import_module(name).add_commands(commands)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"recakit {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
