"""A batch manifest: rows of dubbing jobs read from YAML, JSON Lines, CSV or Parquet.

Every row is validated before any work starts and every bad row is reported with where it is
(line for text formats, row for Parquet). A bad row is a job that fails alone (`read_manifest`:
the good rows still run, as a nightly batch needs); `load_manifest` refuses the whole file
instead, for those who want to fix it in one go before anything runs.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from musedub.infra.errors import InputError
from musedub.infra.storage import is_local, is_under, local_path, read_bytes, redact, split_uri, validate_uri
from musedub.pipeline.core.errors import one_line
from musedub.pipeline.dub.length_policy import LengthPolicy
from musedub.pipeline.dub.options import X264_PRESETS
from musedub.pipeline.face.choice import SPEAKER_HELP, parse_speaker
from musedub.pipeline.generators.base import GeneratorName

FORMATS = {".yaml": "yaml", ".yml": "yaml", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}
SHOWN_PROBLEMS = 50
MAX_MANIFEST_BYTES = 256 * 2**20  # about a million jobs; larger batches are split
MAX_URI = 4096
JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class JobSpec(BaseModel):
    """One row: which video to dub with which audio, where to, and any per-job overrides."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job_id: str = Field(pattern=JOB_ID.pattern, description="unique; names the work folder")
    video: str = Field(
        max_length=MAX_URI, description="video or still image of the speaker: local path, s3:// or gs:// URI"
    )
    audio: str = Field(max_length=MAX_URI, description="the new speech (any audio, or a video's audio track)")
    output: str = Field(max_length=MAX_URI, description="where the mp4 goes; the report is written beside it")
    length_policy: LengthPolicy | None = None
    extra_margin: int | None = Field(None, ge=0, le=100)
    bbox_shift: int | None = Field(None, ge=-100, le=100)
    crf: int | None = Field(None, ge=0, le=51)
    preset: Literal[X264_PRESETS] | None = None  # type: ignore[valid-type]
    still_fps: str | None = Field(None, max_length=32)
    speaker: str | None = Field(None, max_length=64, description=f"which face is dubbed: {SPEAKER_HELP}")
    generator: GeneratorName | None = Field(None, description="musetalk, or style (ours; no published weights)")
    style_reference: str | None = Field(
        None, max_length=MAX_URI, description="style: a clip or folder of clips of the speaker (default: the source)"
    )
    style_steps: int | None = Field(None, ge=1, le=50, description="style: DDIM steps per frame")

    @field_validator("video", "audio", "output", "style_reference")
    @classmethod
    def _uri(cls, value: str | None, info: Any) -> str | None:
        if value is None:
            return value
        try:
            validate_uri(value, info.field_name)
        except InputError as exc:
            raise ValueError(str(exc)) from None
        if ".." in PurePosixPath(split_uri(value)[2]).parts:
            raise ValueError(f"{info.field_name} {value!r} contains '..': give the path without parent steps")
        return value

    @field_validator("speaker")
    @classmethod
    def _speaker(cls, value: str | None) -> str | None:
        if value is not None:
            parse_speaker(value)
        return value

    def overrides(self) -> dict[str, Any]:
        """The per-job options that were set, by DubOptions field name."""
        fields = (
            "length_policy",
            "extra_margin",
            "bbox_shift",
            "crf",
            "preset",
            "still_fps",
            "speaker",
            "generator",
            "style_reference",
            "style_steps",
        )
        return {k: getattr(self, k) for k in fields if getattr(self, k) is not None}


@dataclass(frozen=True)
class ManifestRow:
    where: str  # "line 4" or "row 3"
    values: dict[str, Any]  # empty cells left out
    columns: tuple[str, ...] = ()  # the file's header (CSV, Parquet), empty cells included


class ManifestError(InputError):
    """Every problem of a manifest, one per line."""


def _rows_yaml(text: str) -> list[ManifestRow]:
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if isinstance(root, yaml.MappingNode):  # {jobs: [...]}
        root = next((v for k, v in root.value if k.value == "jobs"), None)
    if not isinstance(root, yaml.SequenceNode):
        raise ManifestError("a YAML manifest is a list of jobs (or a mapping with a `jobs:` list)")
    loader = yaml.SafeLoader("")
    return [ManifestRow(f"line {node.start_mark.line + 1}", loader.construct_document(node)) for node in root.value]


def _rows_jsonl(text: str) -> list[ManifestRow]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(ManifestRow(f"line {number}", json.loads(line)))
        except json.JSONDecodeError as exc:
            rows.append(ManifestRow(f"line {number}", {"__error__": f"not JSON ({exc.msg})"}))
        except RecursionError:
            rows.append(ManifestRow(f"line {number}", {"__error__": "nested too deeply: a job is a flat mapping"}))
    return rows


def _rows_csv(text: str) -> list[ManifestRow]:
    reader = csv.DictReader(io.StringIO(text))
    rows = []
    try:
        for values in reader:
            cleaned = {k: v for k, v in values.items() if k is not None and v not in ("", None)}
            rows.append(ManifestRow(f"line {reader.line_num}", cleaned, tuple(reader.fieldnames or ())))
    except csv.Error as exc:  # e.g. a field over csv's 128 KiB limit
        raise ValueError(f"line {reader.line_num + 1}: not CSV ({exc})") from None
    return rows


def _rows_parquet(data: bytes) -> list[ManifestRow]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"is not a readable Parquet file ({type(exc).__name__})") from None
    return [
        ManifestRow(f"row {i + 1}", {k: v for k, v in values.items() if v is not None}, tuple(table.column_names))
        for i, values in enumerate(table.to_pylist())
    ]


def read_rows(uri: str) -> list[ManifestRow]:
    """The raw rows of a manifest file, each with where it sits."""
    suffix = PurePosixPath(split_uri(uri)[2]).suffix.lower()
    kind = FORMATS.get(suffix)
    if kind is None:
        raise ManifestError(f"manifest {uri} has suffix {suffix!r}: name it .yaml, .jsonl, .csv or .parquet")
    data = read_bytes(uri, "manifest")
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"manifest {uri} is {len(data)} bytes, over {MAX_MANIFEST_BYTES}: split it into batches")
    try:
        if kind == "parquet":
            return _rows_parquet(data)
        text = data.decode("utf-8-sig")
        return {"yaml": _rows_yaml, "jsonl": _rows_jsonl, "csv": _rows_csv}[kind](text)
    except UnicodeDecodeError as exc:
        raise ManifestError(f"manifest {uri} is not UTF-8 text (byte {exc.start}): save it as UTF-8") from None
    except yaml.YAMLError as exc:
        raise ManifestError(f"manifest {uri} is not valid YAML: {one_line(str(exc).splitlines()[0])}") from None
    except RecursionError:
        raise ManifestError(f"manifest {uri} is nested too deeply: a job is a flat mapping of fields") from None
    except (csv.Error, ValueError) as exc:
        raise ManifestError(f"manifest {uri} {one_line(str(exc))}: fix or re-export it") from None


def _problems(error: ValidationError) -> list[str]:
    out = []
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"]) or "row"
        message = item["msg"].removeprefix("Value error, ")
        out.append(f"{field}: {message}")
    return out


def mapping_rows(rows: list[ManifestRow], shape: str) -> tuple[list[ManifestRow], list[str]]:
    """The rows that are mappings, and a problem for each that is not (or did not parse)."""
    good, problems = [], []
    for row in rows:
        if not isinstance(row.values, dict):
            problems.append(f"{row.where}: {shape}")
        elif "__error__" in row.values:
            problems.append(f"{row.where}: {row.values['__error__']}")
        else:
            good.append(row)
    return good, problems


def problems_error(what: str, problems: list[str], consequence: str) -> ManifestError:
    """One error listing every problem (the first SHOWN_PROBLEMS), so a file is fixed in one go."""
    more = f"\n  ... and {len(problems) - SHOWN_PROBLEMS} more" if len(problems) > SHOWN_PROBLEMS else ""
    shown = "\n  ".join(problems[:SHOWN_PROBLEMS])
    return ManifestError(f"{what}: {len(problems)} problem(s), {consequence}:\n  {shown}{more}")


@dataclass(frozen=True)
class RejectedRow:
    """A row that cannot run: in a batch it is a job that fails alone with `message`."""

    job_id: str  # the row's job_id when it is valid and unique, else where it is ("@line-4")
    output: str  # as written, credentials redacted ("" when missing)
    where: str
    problems: tuple[str, ...]

    def message(self, manifest: str) -> str:
        return one_line(f"manifest {manifest} {self.where}: {'; '.join(self.problems)}")


@dataclass(frozen=True)
class Manifest:
    uri: str
    jobs: list[JobSpec]
    rejected: list[RejectedRow]
    where: dict[str, str]  # job_id -> its line or row


def _row_id(values: Any, where: str, ids: Counter[str]) -> str:
    job_id = values.get("job_id") if isinstance(values, dict) else None
    valid = isinstance(job_id, str) and JOB_ID.match(job_id) is not None and ids[job_id] == 1
    return str(job_id) if valid else "@" + where.replace(" ", "-")  # no job_id can start with "@"


def read_manifest(uri: str) -> Manifest:
    """The jobs of every good row and a RejectedRow for every bad one; a file that cannot be read
    at all (or has no jobs) is a ManifestError."""
    rows = read_rows(uri)
    if not rows:
        raise ManifestError(f"manifest {uri} has no jobs")
    problems: dict[str, list[str]] = {row.where: [] for row in rows}
    good, shape = mapping_rows(rows, "a job is a mapping of job_id, video, audio, output")
    for line in shape:
        where, _, text = line.partition(": ")
        problems[where].append(text)
    jobs: dict[str, JobSpec] = {}
    for row in good:
        try:
            jobs[row.where] = _anchored(JobSpec.model_validate(row.values), uri)
        except ValidationError as exc:
            problems[row.where].extend(_problems(exc))
    for field in ("job_id", "output"):
        counts = Counter(getattr(job, field) for job in jobs.values())
        for where, job in jobs.items():
            if counts[getattr(job, field)] > 1:
                problems[where].append(f"{field} {getattr(job, field)!r} appears in more than one job")
    ids = Counter(v for row in rows if isinstance(row.values, dict) and isinstance(v := row.values.get("job_id"), str))
    rejected = [
        RejectedRow(
            _row_id(row.values, row.where, ids),
            redact(str(row.values.get("output", ""))) if isinstance(row.values, dict) else "",
            row.where,
            tuple(problems[row.where]),
        )
        for row in rows
        if problems[row.where]
    ]
    kept = {where: job for where, job in jobs.items() if not problems[where]}
    return Manifest(uri, list(kept.values()), rejected, {job.job_id: where for where, job in kept.items()})


def load_manifest(uri: str, output_prefix: str | None = None) -> list[JobSpec]:
    """Validated jobs, or a ManifestError naming every bad row (and every output outside the prefix)."""
    manifest = read_manifest(uri)
    problems = [f"{row.where}: {p}" for row in manifest.rejected for p in row.problems]
    if output_prefix:
        problems.extend(
            f"{manifest.where[job.job_id]}: {outside_prefix(job, output_prefix)}"
            for job in manifest.jobs
            if not is_under(job.output, output_prefix)
        )
    if problems:
        raise problems_error(f"manifest {uri}", problems, "nothing was run")
    return manifest.jobs


def outside_prefix(job: JobSpec, prefix: str) -> str:
    return f"output {redact(job.output)!r} is outside the allowed prefix {prefix!r}"


def _anchored(job: JobSpec, manifest: str) -> JobSpec:
    """Relative local paths in a local manifest are relative to the manifest's folder."""
    if not is_local(manifest):
        return job
    folder = local_path(manifest).resolve().parent
    fields = {}
    for name in ("video", "audio", "output"):
        value = getattr(job, name)
        if is_local(value) and not local_path(value).is_absolute():
            fields[name] = str(folder / value)
    return job.model_copy(update=fields)


def manifest_schema() -> dict[str, Any]:
    """The JSON Schema of one manifest row."""
    return JobSpec.model_json_schema()
