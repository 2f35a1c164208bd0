"""The `musedub` command. User-fixable errors print one line and exit 2; bugs keep their traceback."""

from __future__ import annotations

import logging
import sys

import typer

from musedub.infra.errors import MusedubError
from musedub.jobs import (
    batch_cmd,
    catalog_cmd,
    dub_cmd,
    eval_cmd,
    faces_cmd,
    features_cmd,
    preprocess_cmd,
    schema_cmd,
    status_cmd,
    train_cmd,
    train_style_cmd,
    weights_cmd,
)

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Batch lip-sync dubbing with MuseTalk.",
)
app.add_typer(weights_cmd.app, name="weights")
app.add_typer(features_cmd.app, name="features")
app.add_typer(catalog_cmd.app, name="catalog")
app.command()(dub_cmd.dub)
app.command()(batch_cmd.batch)
app.command()(preprocess_cmd.preprocess)
app.command()(preprocess_cmd.index)
app.command()(train_cmd.train)
app.command("train-syncnet")(train_cmd.train_syncnet)
app.command("train-style")(train_style_cmd.train_style)
app.command("eval")(eval_cmd.evaluate)
app.command()(schema_cmd.schema)
app.command()(status_cmd.status)
app.command()(faces_cmd.faces)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        app(args=argv, prog_name="musedub")  # standalone: usage errors print themselves and exit 2
    except MusedubError as exc:
        print(f"musedub: error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
