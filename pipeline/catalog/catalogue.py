"""A streaming catalogue: titles with a source video and, per language, a dub audio.

Read from CSV or Parquet (or YAML / JSON Lines), local or on object storage, in either shape:
- wide: `title_id`, `video`, and one `audio_<language>` column per language (empty: no dub yet);
- long: `title_id`, `video`, `language`, `audio`, one row per title and language.
Every problem is reported with its line/row before anything runs; a bad row is left out (and
reported) while the good ones run, unless the caller asks for the whole file to be refused. Each
title x language becomes one job writing `<output prefix>/<title_id>/<language>.mp4`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, get_args

from musedub.infra.errors import InputError
from musedub.infra.storage import join_uri, validate_uri
from musedub.models.constants import GeneratorName
from musedub.pipeline.dub.manifest import mapping_rows, problems_error, read_rows
from musedub.pipeline.face.choice import parse_speaker

TITLE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
AUDIO_COLUMN = "audio_"


@dataclass(frozen=True)
class CatalogEntry:
    title_id: str
    language: str
    video: str
    audio: str | None  # None: no dub audio delivered yet
    where: str
    speaker: str | None = None  # the row's `speaker` column: which face is dubbed (default: the batch's)
    generator: str | None = None  # the row's `generator` column: musetalk or style (default: the batch's)
    style_reference: str | None = None  # the row's `style_reference` column (style; default: the source)

    def overrides(self) -> dict[str, str]:
        """The options this row sets for its jobs, by DubOptions field name."""
        own = {"speaker": self.speaker, "generator": self.generator, "style_reference": self.style_reference}
        return {k: v for k, v in own.items() if v is not None}

    @property
    def job_id(self) -> str:
        return f"{self.title_id}.{self.language}"

    def output(self, prefix: str) -> str:
        return join_uri(prefix, self.title_id, f"{self.language}.mp4")


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value) or str(value).strip() == ""


def _entries(values: dict[str, Any], where: str, languages: list[str]) -> tuple[list[CatalogEntry], list[str]]:
    problems = []
    title, video = values.get("title_id"), values.get("video")
    if _blank(title) or not TITLE_ID.match(str(title)):
        problems.append(f"{where}: title_id {title!r} must be letters, digits, '_' or '-' (at most 100)")
    if _blank(video):
        problems.append(f"{where}: video is missing")
    else:
        try:
            validate_uri(str(video), "video")
        except InputError as exc:
            problems.append(f"{where}: {exc}")
    if "language" in values:
        audios = {str(values["language"]): values.get("audio")}
    else:
        audios = {language: values.get(AUDIO_COLUMN + language) for language in languages}
        if not audios:
            problems.append(f"{where}: no audio_<language> column and no language/audio columns")
    speaker = None if _blank(values.get("speaker")) else str(values["speaker"]).strip()
    if speaker is not None:
        try:
            parse_speaker(speaker)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
    generator = None if _blank(values.get("generator")) else str(values["generator"]).strip()
    if generator is not None and generator not in get_args(GeneratorName):
        problems.append(f"{where}: generator {generator!r} is not one of {', '.join(get_args(GeneratorName))}")
    reference = None if _blank(values.get("style_reference")) else str(values["style_reference"]).strip()
    if reference is not None:
        try:
            validate_uri(reference, "style_reference")
        except InputError as exc:
            problems.append(f"{where}: {exc}")
    entries = []
    for language, audio in audios.items():
        if not LANGUAGE.match(language):
            problems.append(f"{where}: language {language!r} is not a language tag like 'es' or 'pt-BR'")
            continue
        if not _blank(audio):
            try:
                validate_uri(str(audio), f"audio_{language}")
            except InputError as exc:
                problems.append(f"{where}: {exc}")
                continue
        entries.append(
            CatalogEntry(
                str(title),
                language,
                str(video),
                None if _blank(audio) else str(audio).strip(),
                where,
                speaker,
                generator,
                reference,
            )
        )
    return entries, problems


def read_catalog(uri: str) -> tuple[list[CatalogEntry], list[str]]:
    """Every title x language of the good rows, and one problem per line for each bad row (a row
    with any problem is left out whole, as is a title x language seen at an earlier row)."""
    rows = read_rows(uri)
    # the file's columns, not each row's: readers drop empty cells, and an empty cell is a missing dub
    languages = sorted(
        {
            name.removeprefix(AUDIO_COLUMN)
            for row in rows
            if isinstance(row.values, dict)
            for name in (*row.columns, *row.values)
            if name.startswith(AUDIO_COLUMN)
        }
    )
    good, problems = mapping_rows(rows, "a title is a mapping of title_id, video and audio columns")
    entries: list[CatalogEntry] = []
    seen: dict[str, str] = {}
    for row in good:
        found, bad = _entries(row.values, row.where, languages)
        problems.extend(bad)
        for entry in found if not bad else ():
            if entry.job_id in seen:
                problems.append(
                    f"{entry.where}: title {entry.title_id} language {entry.language} also at {seen[entry.job_id]}"
                )
            else:
                seen[entry.job_id] = entry.where
                entries.append(entry)
    if not entries and not problems:
        problems.append("no titles")
    return entries, problems


def load_catalog(uri: str) -> list[CatalogEntry]:
    """Every title x language of the catalogue, or a ManifestError listing every bad row."""
    entries, problems = read_catalog(uri)
    if problems:
        raise problems_error(f"catalogue {uri}", problems, "nothing was planned")
    return entries
