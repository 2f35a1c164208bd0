"""`musedub status RUN`: where a batch run stands, from its summary and errors table.

A batch rewrites `RUN/summary.json` as jobs finish (state `running`, then `finished`), so this
works while it runs, after it ends and after it was interrupted, from any machine that can read
the run's folder.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from musedub.infra.errors import InputError
from musedub.infra.storage import exists, read_bytes
from musedub.jobs.batch_cmd import summary_table
from musedub.jobs.job_flags import check_uris
from musedub.pipeline.core.run import Run
from musedub.pipeline.dub.outcome import JobOutcome

JOB_FIELDS = set(JobOutcome.__dataclass_fields__)


def status(
    run: Annotated[str, typer.Argument(help="The run folder a batch printed: <runs>/<run id> (path or URI).")],
) -> None:
    """Print a batch run's state, each job's status and its errors; exits 1 if any job failed."""
    check_uris(run=run)
    found = Run.at(run)
    errors = found.errors.read()
    if not exists(found.summary_uri):
        if not errors:
            raise InputError(
                f"run {found.uri} has no summary.json and no errors: give the folder a batch printed "
                "(`run <id>: errors table <folder>/errors`)"
            )
        typer.echo(f"run {found.uri}: no summary yet (planning, or stopped before any job finished)")
        failed = True
    else:
        summary = json.loads(read_bytes(found.summary_uri, "run summary"))
        outcomes = [JobOutcome(**{k: v for k, v in job.items() if k in JOB_FIELDS}) for job in summary.get("jobs", [])]
        typer.echo(f"run {summary.get('run_id', found.run_id)}: {summary.get('state', 'finished')}")
        typer.echo(summary_table(outcomes))
        counts = summary.get("counts", {})
        typer.echo(", ".join(f"{v} {k}" for k, v in counts.items()))
        failed = bool(counts.get("failed"))
    for record in errors:
        typer.echo(f"[{record.item_id}] {record.stage}: {record.message}")
    if failed:
        raise typer.Exit(1)
