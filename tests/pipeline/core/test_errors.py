"""Error records: one line each, one table per run, read back as written."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from musedub.infra.errors import InputError
from musedub.pipeline.core.errors import ERRORS_SCHEMA, ErrorRecord
from musedub.pipeline.core.run import Run


def test_a_users_error_keeps_its_text_and_a_bug_its_type_on_one_line() -> None:
    user = ErrorRecord.from_exception(InputError("video a.mp4 is missing:\ngive a path"), "r", "job", "plan")
    bug = ErrorRecord.from_exception(ValueError("x\r\nforged line"), "r", "job", "Crop")
    assert (user.error_class, user.message) == ("InputError", "video a.mp4 is missing: give a path")
    assert (bug.error_class, bug.message) == ("ValueError", "ValueError: x forged line")


def test_the_run_table_holds_every_record_with_its_schema(tmp_path: Path) -> None:
    run = Run(str(tmp_path / "runs"))
    run.errors.record(InputError("first"), "job-a", "plan")
    run.errors.record(ValueError("second"), "job-b:segment-1", "Generate")
    run.errors.record(InputError("first again"), "job-a", "plan")  # the same item and stage: replaced
    records = run.errors.read()
    assert [(r.item_id, r.stage, r.message) for r in records] == [
        ("job-b:segment-1", "Generate", "ValueError: second"),
        ("job-a", "plan", "first again"),
    ]
    assert {r.run_id for r in records} == {run.run_id}
    table = pq.read_table(tmp_path / "runs" / run.run_id / "errors")
    assert table.schema.remove_metadata().equals(ERRORS_SCHEMA) and table.num_rows == 2
    summary = run.write_summary({"failed": 2})
    assert Path(summary).parent == tmp_path / "runs" / run.run_id


def test_a_run_without_errors_reads_an_empty_table(tmp_path: Path) -> None:
    assert Run(str(tmp_path)).errors.read() == []
