"""What a catalogue still needs: outputs missing, or made from inputs that changed since.

Staleness compares the job key recorded in each output's report (a hash of the inputs'
checksums or ETags, the options and the weights) with the key of today's inputs, never
timestamps; a changed key names what changed. Checksums are HEAD requests on object stores,
each source video checked once however many languages it has.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from functools import cache

from musedub.infra.errors import InputError
from musedub.infra.storage import checksum
from musedub.pipeline.catalog.catalogue import CatalogEntry
from musedub.pipeline.dub.manifest import JobSpec
from musedub.pipeline.dub.options import DubOptions
from musedub.pipeline.dub.plan import job_key
from musedub.pipeline.dub.report import existing_report
from musedub.pipeline.generators.reference_clips import reference_checksum

NEW, STALE, CURRENT, MISSING = "new", "stale", "up to date", "missing input"


@dataclass(frozen=True)
class EntryPlan:
    entry: CatalogEntry
    status: str
    output: str
    reason: str = ""

    def job(self) -> JobSpec:
        assert self.entry.audio is not None
        entry = self.entry
        return JobSpec(
            job_id=entry.job_id, video=entry.video, audio=entry.audio, output=self.output, **entry.overrides()
        )


@dataclass(frozen=True)
class CatalogPlan:
    entries: list[EntryPlan] = field(default_factory=list)

    @property
    def todo(self) -> list[EntryPlan]:
        return [e for e in self.entries if e.status in (NEW, STALE)]

    def jobs(self) -> list[JobSpec]:
        return [e.job() for e in self.todo]

    def summary(self) -> dict[str, int]:
        counts = Counter(e.status for e in self.entries)
        return {
            "titles": len({e.entry.title_id for e in self.entries}),
            "languages": len({e.entry.language for e in self.entries}),
            "to do": counts[NEW] + counts[STALE],
            "new": counts[NEW],
            "stale": counts[STALE],
            "up to date": counts[CURRENT],
            "missing input": counts[MISSING],
        }

    def manifest_lines(self) -> str:
        return "".join(json.dumps(job.model_dump(exclude_none=True)) + "\n" for job in self.jobs())


def _changed(report: dict, checksums: dict[str, str], options: DubOptions, weights: str) -> str:
    recorded = report.get("checksums") or {}
    changed = [name.replace("_", " ") for name in checksums if recorded.get(name) != checksums[name]]
    if changed:
        return " and ".join(changed) + " changed"
    if report.get("options") != options.model_dump(mode="json"):
        return "options changed"
    if report.get("weights") != weights:
        return "weights changed"
    return "made by another version of musedub"


def plan_catalog(entries: list[CatalogEntry], output_prefix: str, options: DubOptions, weights: str) -> CatalogPlan:
    @cache
    def digest(uri: str, what: str) -> str | InputError:
        try:
            return checksum(uri, what)
        except InputError as exc:
            return exc

    planned = []
    for entry in entries:
        output = entry.output(output_prefix)
        if entry.audio is None:
            planned.append(EntryPlan(entry, MISSING, output, f"no dub audio for {entry.language}"))
            continue
        video, audio = digest(entry.video, "video"), digest(entry.audio, "dub audio")
        problem = next((x for x in (video, audio) if isinstance(x, InputError)), None)
        if problem is not None:
            planned.append(EntryPlan(entry, MISSING, output, str(problem)))
            continue
        own = options.model_copy(update=entry.overrides())
        checksums = {"video": str(video), "audio": str(audio)}
        if own.generator == "style" and own.style_reference:
            try:
                checksums["style_reference"] = reference_checksum(own.style_reference)
            except InputError as exc:
                planned.append(EntryPlan(entry, MISSING, output, str(exc)))
                continue
        report = existing_report(output)
        if report is None:
            planned.append(EntryPlan(entry, NEW, output))
        elif report.get("job_key") == job_key(entry.video, entry.audio, output, checksums, own, weights):
            planned.append(EntryPlan(entry, CURRENT, output))
        else:
            planned.append(EntryPlan(entry, STALE, output, _changed(report, checksums, own, weights)))
    return CatalogPlan(planned)
