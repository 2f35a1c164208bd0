"""`write_batch_index`: `index.html` in a batch's run folder, one row per job with its status and a
link to its preview; a failed job's row, and its own page under `previews/` in the run folder,
show its errors from the run's errors table (nothing is written beside an output that never was).

Built from what the run folder holds (`summary.json` and `errors/`), so it can be written at the
end of a batch, or again later for a run that was interrupted.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
from typing import Any
from urllib.parse import quote

from musedub.infra.errors import InputError
from musedub.infra.storage import canonical, exists, is_local, join_uri, read_bytes, split_uri, write_bytes_atomic
from musedub.pipeline.core.errors import ErrorRecord
from musedub.pipeline.core.run import Run
from musedub.pipeline.dub.preview.job import preview_uri
from musedub.pipeline.dub.preview.page import Markup, document, esc, link, table

INDEX_FOOTER = [
    ("Jobs", "every job of the run with its status (done, up to date, failed, running) and frames dubbed."),
    ("Preview", "the job's page beside its output; 'none' where no page was written."),
    ("Error", "a failed job's first error from the run's errors table (stage, message); its page lists all."),
]
FAILED_FOOTER = [
    (
        "Errors",
        "every record of this job in the run's errors table: where it failed, the error's class, the message "
        "naming the input and the fix.",
    ),
]


def href(target: str, page: str) -> str:
    """A link in the page at `page` to `target`: relative when both lie on one store (local, or one
    bucket), so it resolves wherever the folder is served or copied; escaped so `#` and `?` stay
    part of the name."""
    if is_local(target) and is_local(page):
        return quote(os.path.relpath(canonical(target), os.path.dirname(canonical(page))).replace(os.sep, "/"))
    target_scheme, target_bucket, target_path = split_uri(canonical(target))
    page_scheme, page_bucket, page_path = split_uri(canonical(page))
    if (target_scheme, target_bucket) == (page_scheme, page_bucket):
        return quote(posixpath.relpath("/" + target_path, posixpath.dirname("/" + page_path)))
    return quote(canonical(target), safe=":/")


def failed_page_uri(run_uri: str, job_id: str) -> str:
    """`RUN/previews/<job id, made safe>-<hash>.html`: any job id gives one plain, distinct name."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", job_id)[:60]
    return join_uri(run_uri, "previews", f"{safe}-{hashlib.sha256(job_id.encode()).hexdigest()[:10]}.html")


def _records_of(job_id: str, records: list[ErrorRecord]) -> list[ErrorRecord]:
    """A job's records: under its id, or a segment's or a chunk's (`<job id>:<item>`)."""
    return [r for r in records if r.item_id == job_id or r.item_id.startswith(job_id + ":")]


def _failed_page(run: Run, job: dict[str, Any], records: list[ErrorRecord], index: str) -> str:
    uri = failed_page_uri(run.uri, job["job_id"])
    rows = [(r.stage, r.error_class, r.message) for r in records] or [("", "", job.get("error", ""))]
    body = [
        f"<h1>Job {esc(job['job_id'])} failed</h1>",
        f"<p>Run {esc(run.run_id)}; output {esc(job.get('output', ''))} was not written.</p>",
        '<h2>Errors</h2><div class="error">',
        table(["stage", "error", "message"], rows),
        f"</div><p>{link(href(index, uri), 'all jobs of this run')}</p>",
    ]
    write_bytes_atomic(uri, document(f"failed {job['job_id']}", body, FAILED_FOOTER).encode("utf-8"), "preview")
    return uri


def write_batch_index(run_uri: str) -> str:
    """Write `RUN/index.html` (and a page per failed job) and return its URI. InputError when the
    folder holds no run summary."""
    run = Run.at(run_uri)
    if not exists(run.summary_uri):
        raise InputError(f"run {run.uri} has no summary.json: give the run folder a batch printed")
    summary = json.loads(read_bytes(run.summary_uri, "run summary"))
    records = run.errors.read()
    index = join_uri(run.uri, "index.html")
    rows, classes = [], []
    for job in summary.get("jobs", []):
        status, output = job.get("status", ""), job.get("output", "")
        if status == "failed":
            own = _records_of(job["job_id"], records)
            first = own[0] if own else None
            error = f"{first.stage}: {first.message}" if first else job.get("error", "")
            page = link(href(_failed_page(run, job, own, index), index), "errors")
        else:
            error = ""
            found = bool(output) and exists(preview_uri(output))
            page = link(href(preview_uri(output), index), "preview") if found else Markup("none")
        rows.append((job["job_id"], status, job.get("frames", 0), output, page, error))
        classes.append("failed" if status == "failed" else "")
    counts = ", ".join(f"{v} {k}" for k, v in summary.get("counts", {}).items())
    body = [
        f"<h1>Batch run {esc(summary.get('run_id', run.run_id))}</h1>",
        f"<p>{esc(summary.get('state', 'finished'))}: {esc(counts)}</p>",
        table(["job", "status", "frames", "output", "preview", "error"], rows, classes),
    ]
    write_bytes_atomic(index, document(f"run {run.run_id}", body, INDEX_FOOTER).encode("utf-8"), "preview")
    return index
