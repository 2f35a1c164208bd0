"""The `musedub` command. User-fixable errors print one line and exit 2; bugs keep their traceback."""

from __future__ import annotations

import logging
import sys

import click
import typer

from infra.errors import MusedubError
from jobs import features_cmd, weights_cmd

app = typer.Typer(
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, help="Batch lip-sync dubbing with MuseTalk."
)
app.add_typer(weights_cmd.app, name="weights")
app.add_typer(features_cmd.app, name="features")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        app(args=argv, prog_name="musedub", standalone_mode=False)
    except MusedubError as exc:
        print(f"musedub: error: {exc}", file=sys.stderr)
        return 2
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        print("musedub: aborted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
