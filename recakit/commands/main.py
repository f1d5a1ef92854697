"""`recakit` on the command line: one sub-command group per module.

Each entry of COMMANDS names a function `add(subparsers)` of a module in recakit.commands, which
adds its commands and sets `run=<function(args) -> int | None>` on each parser.
"""

import argparse
import sys
from importlib import import_module

COMMANDS = [
    "recakit.commands.geneval:add_commands",  # recakit geneval prompts | sample | score | agree
    "recakit.commands.dpg:add_commands",  # recakit dpg prompts | sample | score
    "recakit.commands.toy:add_shapes_commands",  # recakit shapes render
    "recakit.commands.train:add_train_commands",  # recakit train
    "recakit.commands.toy:add_toy_commands",  # recakit toy train-base
    "recakit.commands.toy:add_reproduce_commands",  # recakit reproduce --preset toy
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recakit", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for entry in COMMANDS:
        module_name, function = entry.split(":")
        getattr(import_module(module_name), function)(commands)
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
