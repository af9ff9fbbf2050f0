"""The `runstatus` command's entry point: the command line needs the `cli` extra (typer, rich,
PyYAML), which a library user need not install; without it, say so in one line."""

from __future__ import annotations

import sys

CLI_NEEDS = {"typer", "rich", "yaml"}


def main() -> None:
    try:
        from runstatus import cli
    except ModuleNotFoundError as e:
        if e.name not in CLI_NEEDS:
            raise
        sys.exit(f"error: the runstatus command needs the cli extra ({e.name} is missing): "
                 "pip install 'runstatus-client[cli]'")
    cli.main()
