"""A batch manifest: rows of dubbing jobs read from YAML, JSON Lines, CSV or Parquet.

Every row is validated before any work starts and every bad row is reported with where it is
(line for text formats, row for Parquet). A bad row is a job that fails alone (`read_manifest`:
the good rows still run, as a nightly batch needs); `load_manifest` refuses the whole file
instead, for those who want to fix it in one go before anything runs.

The file is streamed: JSON Lines and CSV line by line, Parquet a batch of rows at a time, each row
validated as it comes and only its small result kept, so a million-job manifest is never held as
text. YAML is parsed whole (its nodes span lines); it is meant for hand-written batches.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from musedub.infra.errors import InputError
from musedub.infra.storage import is_local, is_under, local_path, open_stream, redact, split_uri, validate_uri
from musedub.models.constants import GeneratorName
from musedub.pipeline.core.errors import one_line
from musedub.pipeline.dub.length_policy import LengthPolicy
from musedub.pipeline.dub.options import X264_PRESETS
from musedub.pipeline.face.choice import SPEAKER_HELP, parse_speaker

FORMATS = {".yaml": "yaml", ".yml": "yaml", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}
SHOWN_PROBLEMS = 50
MAX_MANIFEST_BYTES = 256 * 2**20  # about a million jobs; larger batches are split
PARQUET_BATCH = 1024  # Parquet rows turned into Python objects at a time
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


def _too_large(uri: str, size: int | None = None) -> ManifestError:
    told = f"{size} bytes, over {MAX_MANIFEST_BYTES}" if size is not None else f"over {MAX_MANIFEST_BYTES} bytes"
    return ManifestError(f"manifest {uri} is {told}: split it into batches")


def _not_utf8(uri: str, byte: int) -> ManifestError:
    return ManifestError(f"manifest {uri} is not UTF-8 text (byte {byte}): save it as UTF-8")


def _lines(handle: IO[bytes], uri: str) -> Iterator[str]:
    """Each line of the file decoded, its newline kept (a leading BOM dropped); a file that grows
    past MAX_MANIFEST_BYTES while it is read is refused as soon as it does."""
    offset = 0
    while line := handle.readline(MAX_MANIFEST_BYTES + 1 - offset):
        start, offset = offset, offset + len(line)
        if offset > MAX_MANIFEST_BYTES:
            raise _too_large(uri)
        if start == 0 and line.startswith(codecs.BOM_UTF8):
            line, start = line[len(codecs.BOM_UTF8) :], len(codecs.BOM_UTF8)
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _not_utf8(uri, start + exc.start) from None
        yield text


def _rows_yaml(handle: IO[bytes], uri: str) -> Iterator[ManifestRow]:
    data = handle.read(MAX_MANIFEST_BYTES + 1)
    if len(data) > MAX_MANIFEST_BYTES:
        raise _too_large(uri)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _not_utf8(uri, exc.start + len(codecs.BOM_UTF8) * data.startswith(codecs.BOM_UTF8)) from None
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if isinstance(root, yaml.MappingNode):  # {jobs: [...]}
        root = next((v for k, v in root.value if k.value == "jobs"), None)
    if not isinstance(root, yaml.SequenceNode):
        raise ManifestError("a YAML manifest is a list of jobs (or a mapping with a `jobs:` list)")
    loader = yaml.SafeLoader("")
    for node in root.value:
        yield ManifestRow(f"line {node.start_mark.line + 1}", loader.construct_document(node))


def _rows_jsonl(handle: IO[bytes], uri: str) -> Iterator[ManifestRow]:
    number = 0
    for text in _lines(handle, uri):
        for line in text.splitlines():  # numbered as str.splitlines numbers the whole file
            number += 1
            if not line.strip():
                continue
            try:
                values = json.loads(line)
            except json.JSONDecodeError as exc:
                values = {"__error__": f"not JSON ({exc.msg})"}
            except RecursionError:
                values = {"__error__": "nested too deeply: a job is a flat mapping"}
            yield ManifestRow(f"line {number}", values)


def _rows_csv(handle: IO[bytes], uri: str) -> Iterator[ManifestRow]:
    reader = csv.DictReader(_lines(handle, uri))
    try:
        for values in reader:
            cleaned = {k: v for k, v in values.items() if k is not None and v not in ("", None)}
            yield ManifestRow(f"line {reader.line_num}", cleaned, tuple(reader.fieldnames or ()))
    except csv.Error as exc:  # e.g. a field over csv's 128 KiB limit
        raise ValueError(f"line {reader.line_num + 1}: not CSV ({exc})") from None


def _rows_parquet(handle: IO[bytes], uri: str) -> Iterator[ManifestRow]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    number = 0
    try:
        parquet = pq.ParquetFile(handle)
        columns = tuple(parquet.schema_arrow.names)
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH):  # a row group read at a time
            for values in batch.to_pylist():
                number += 1
                yield ManifestRow(f"row {number}", {k: v for k, v in values.items() if v is not None}, columns)
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"is not a readable Parquet file ({type(exc).__name__})") from None


READERS = {"yaml": _rows_yaml, "jsonl": _rows_jsonl, "csv": _rows_csv, "parquet": _rows_parquet}


def iter_rows(uri: str) -> Iterator[ManifestRow]:
    """The raw rows of a manifest file, each with where it sits, as they are read."""
    suffix = PurePosixPath(split_uri(uri)[2]).suffix.lower()
    kind = FORMATS.get(suffix)
    if kind is None:
        raise ManifestError(f"manifest {uri} has suffix {suffix!r}: name it .yaml, .jsonl, .csv or .parquet")
    with open_stream(uri, "manifest") as handle:
        size = handle.seek(0, io.SEEK_END)
        if size > MAX_MANIFEST_BYTES:  # refused before a byte of it is parsed
            raise _too_large(uri, size)
        handle.seek(0)
        try:
            yield from READERS[kind](handle, uri)
        except yaml.YAMLError as exc:
            raise ManifestError(f"manifest {uri} is not valid YAML: {one_line(str(exc).splitlines()[0])}") from None
        except RecursionError:
            raise ManifestError(f"manifest {uri} is nested too deeply: a job is a flat mapping of fields") from None
        except (csv.Error, ValueError) as exc:
            raise ManifestError(f"manifest {uri} {one_line(str(exc))}: fix or re-export it") from None
        except OSError as exc:  # the stream broke off (a remote read)
            raise ManifestError(f"manifest {uri} cannot be read ({type(exc).__name__}): check the URI") from None


def read_rows(uri: str) -> list[ManifestRow]:
    """Every raw row of a manifest file (a catalogue reads its columns before its rows)."""
    return list(iter_rows(uri))


def _problems(error: ValidationError) -> list[str]:
    out = []
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"]) or "row"
        message = item["msg"].removeprefix("Value error, ")
        out.append(f"{field}: {message}")
    return out


def shape_problem(row: ManifestRow, shape: str) -> str | None:
    """Why a row cannot be a record at all (not a mapping, or did not parse), else None."""
    if not isinstance(row.values, dict):
        return shape
    return str(row.values["__error__"]) if "__error__" in row.values else None


def mapping_rows(rows: Iterable[ManifestRow], shape: str) -> tuple[list[ManifestRow], list[str]]:
    """The rows that are mappings, and a problem for each that is not (or did not parse)."""
    good, problems = [], []
    for row in rows:
        problem = shape_problem(row, shape)
        if problem is None:
            good.append(row)
        else:
            problems.append(f"{row.where}: {problem}")
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


@dataclass(slots=True)
class _ReadRow:
    """What is kept of a row once it is validated: never its raw values."""

    where: str
    raw_id: str | None  # the row's job_id when it is a string, valid or not
    output: str  # as written, credentials redacted ("" when missing)
    job: JobSpec | None
    problems: list[str]


def _read_row(row: ManifestRow, folder: Path | None) -> _ReadRow:
    values = row.values if isinstance(row.values, dict) else {}
    raw_id = values.get("job_id") if isinstance(values.get("job_id"), str) else None
    read = _ReadRow(row.where, raw_id, redact(str(values.get("output", ""))), None, [])
    shape = shape_problem(row, "a job is a mapping of job_id, video, audio, output")
    if shape is not None:
        read.problems.append(shape)
        return read
    try:
        read.job = _anchored(JobSpec.model_validate(values), folder)
    except ValidationError as exc:
        read.problems.extend(_problems(exc))
    return read


def _row_id(raw_id: str | None, where: str, ids: Counter[str]) -> str:
    if raw_id is not None and JOB_ID.match(raw_id) is not None and ids[raw_id] == 1:
        return raw_id
    return "@" + where.replace(" ", "-")  # no job_id can start with "@"


def read_manifest(uri: str) -> Manifest:
    """The jobs of every good row and a RejectedRow for every bad one; a file that cannot be read
    at all (or has no jobs) is a ManifestError."""
    folder = local_path(uri).resolve().parent if is_local(uri) else None
    rows = [_read_row(row, folder) for row in iter_rows(uri)]
    if not rows:
        raise ManifestError(f"manifest {uri} has no jobs")
    valid = [row for row in rows if row.job is not None]
    for field in ("job_id", "output"):
        counts = Counter(getattr(row.job, field) for row in valid)
        for row in valid:
            if counts[value := getattr(row.job, field)] > 1:
                row.problems.append(f"{field} {value!r} appears in more than one job")
    ids = Counter(row.raw_id for row in rows if row.raw_id is not None)
    rejected = [
        RejectedRow(_row_id(row.raw_id, row.where, ids), row.output, row.where, tuple(row.problems))
        for row in rows
        if row.problems
    ]
    kept = [(row.where, row.job) for row in rows if row.job is not None and not row.problems]
    return Manifest(uri, [job for _, job in kept], rejected, {job.job_id: where for where, job in kept})


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


def _anchored(job: JobSpec, folder: Path | None) -> JobSpec:
    """Relative local paths in a local manifest (`folder` is its folder) are relative to that folder."""
    if folder is None:
        return job
    fields = {}
    for name in ("video", "audio", "output"):
        value = getattr(job, name)
        if is_local(value) and not local_path(value).is_absolute():
            fields[name] = str(folder / value)
    return job.model_copy(update=fields)


def manifest_schema() -> dict[str, Any]:
    """The JSON Schema of one manifest row."""
    return JobSpec.model_json_schema()
