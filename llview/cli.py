"""The `llview` command: each area registers its own sub-commands."""

import argparse
import importlib
import os
import sys

from llview.paths import LlviewError

# Modules that expose register(subparsers); each adds its sub-commands.
COMMAND_MODULES = [
    "llview.kernel.cli",   # llview kernel fetch|list
    "llview.keys",         # llview keygen
    "llview.vm.cli",       # llview vm start|exec|stop|list
    "llview.agent_cli",    # llview agent serve
    "llview.build",        # llview build, llview opt
    "llview.layout",       # llview layout
    "llview.demo",         # llview demo
    "llview.check",        # llview check
]


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llview",
        description="Compile kernel-header C into IDS programs that read a guest through an agent.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue  # area not built yet
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LlviewError as e:
        print(f"llview: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `llview layout task_struct | head`: the reader left; say nothing more.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
