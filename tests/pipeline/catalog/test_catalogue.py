"""Catalogue reading (wide and long shapes, every bad row named) and staleness by job key."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from musedub.infra.storage import checksum
from musedub.jobs.cli import main
from musedub.pipeline.catalog.catalogue import load_catalog
from musedub.pipeline.catalog.plan import CURRENT, MISSING, NEW, STALE, plan_catalog
from musedub.pipeline.dub.manifest import ManifestError
from musedub.pipeline.dub.options import DubOptions
from musedub.pipeline.dub.plan import job_key, report_uri


def test_wide_csv_gives_one_entry_per_title_and_language(tmp_path: Path) -> None:
    path = tmp_path / "catalog.csv"
    path.write_text("title_id,video,audio_es,audio_pt-BR\nt1,/v/1.mp4,/a/1es.wav,\nt2,s3://b/2.mp4,,s3://b/2pt.wav\n")
    entries = {e.job_id: e for e in load_catalog(str(path))}
    assert set(entries) == {"t1.es", "t1.pt-BR", "t2.es", "t2.pt-BR"}
    assert entries["t1.es"].audio == "/a/1es.wav" and entries["t1.pt-BR"].audio is None
    assert entries["t2.pt-BR"].output("s3://out/dub") == "s3://out/dub/t2/pt-BR.mp4"


def test_long_parquet_reads_the_same(tmp_path: Path) -> None:
    table = pa.table(
        {
            "title_id": ["t1", "t1"],
            "video": ["/v/1.mp4", "/v/1.mp4"],
            "language": ["es", "fr"],
            "audio": ["/a/es.wav", None],
        }
    )
    pq.write_table(table, tmp_path / "catalog.parquet")
    entries = load_catalog(str(tmp_path / "catalog.parquet"))
    assert [(e.job_id, e.audio) for e in entries] == [("t1.es", "/a/es.wav"), ("t1.fr", None)]


def test_every_bad_row_is_named_before_anything_is_planned(tmp_path: Path) -> None:
    path = tmp_path / "catalog.csv"
    path.write_text(
        "title_id,video,audio_es,audio_x1\n"
        "ok,/v.mp4,/a.wav,\n"
        "bad id,/v.mp4,/a.wav,\n"
        "t3,,ftp://host/a.wav,\n"
        "ok,/v.mp4,/b.wav,\n"
    )
    with pytest.raises(ManifestError) as error:
        load_catalog(str(path))
    message = str(error.value)
    assert "line 2: language 'x1'" in message
    assert "line 3: title_id 'bad id'" in message
    assert "line 4: video is missing" in message and "unsupported scheme 'ftp'" in message
    assert "line 5: language 'x1'" in message  # a bad column spoils every row


def test_a_bad_row_is_left_out_and_named_while_the_good_rows_are_planned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"
    video, audio = tmp_path / "v.mp4", tmp_path / "a.wav"
    video.write_bytes(b"video"), audio.write_bytes(b"audio")
    path = tmp_path / "catalog.csv"
    path.write_text(
        f"title_id,video,audio_es\nok,{video},{audio}\n"
        f"leaky,s3://AKIAEX:{secret}@b/v.mp4,{audio}\nbad id,{video},{audio}\nok,{video},{audio}\n"
    )
    manifest = tmp_path / "todo.jsonl"
    args = ["catalog", "plan", str(path), "--output-prefix", str(tmp_path / "out"), "--manifest", str(manifest)]
    assert main(args) == 1  # the good row is planned; the exit code says some were not
    printed = capsys.readouterr()
    assert [json.loads(line)["job_id"] for line in manifest.read_text().splitlines()] == ["ok.es"]
    left_out = [line for line in printed.err.splitlines() if line.endswith("(row left out)")]
    assert len(left_out) == 3 and "line 3: video 's3://***@b/v.mp4' carries credentials" in left_out[0]
    assert "line 4: title_id 'bad id'" in left_out[1] and "line 5: title ok language es also at line 2" in left_out[2]
    assert secret not in printed.out + printed.err + manifest.read_text()
    only_bad = tmp_path / "bad.csv"
    only_bad.write_text(f"title_id,video,audio_es\nbad id,{video},{audio}\n")
    assert main(["catalog", "plan", str(only_bad), "--output-prefix", str(tmp_path / "out")]) == 2
    assert "nothing was planned" in capsys.readouterr().err


def test_plan_sorts_new_stale_current_and_missing_by_recorded_job_keys(tmp_path: Path) -> None:
    video, audio, changed = tmp_path / "v.mp4", tmp_path / "a.wav", tmp_path / "b.wav"
    video.write_bytes(b"video"), audio.write_bytes(b"audio"), changed.write_bytes(b"old audio")
    out = tmp_path / "out"
    options, weights = DubOptions(), "weights"
    catalog = tmp_path / "catalog.csv"
    catalog.write_text(
        f"title_id,video,audio_es,audio_fr,audio_de\nt1,{video},{audio},{changed},\nt2,{video},{audio},/gone.wav,\n"
    )
    entries = load_catalog(str(catalog))

    def commit(job: str, audio_file: Path) -> None:  # what a finished dub leaves: output + report
        title, language = job.split(".")
        output = out / title / f"{language}.mp4"
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_bytes(b"mp4")
        sums = {"video": checksum(str(video), "video"), "audio": checksum(str(audio_file), "audio")}
        key = job_key(str(video), str(audio_file), str(output), sums, options, weights)
        report = {"job_key": key, "checksums": sums, "options": options.model_dump(mode="json"), "weights": weights}
        Path(report_uri(str(output))).write_text(json.dumps(report))

    commit("t1.es", audio)
    commit("t1.fr", changed)
    changed.write_bytes(b"new audio")  # the fr dub was re-delivered
    plan = plan_catalog(entries, str(out), options, weights)
    status = {e.entry.job_id: (e.status, e.reason) for e in plan.entries}
    assert status["t1.es"] == (CURRENT, "")
    assert status["t1.fr"] == (STALE, "audio changed")
    assert status["t2.es"] == (NEW, "")
    assert status["t1.de"][0] == status["t2.de"][0] == MISSING
    assert status["t2.fr"][0] == MISSING and "/gone.wav" in status["t2.fr"][1]
    assert plan.summary() == {
        "titles": 2,
        "languages": 3,
        "to do": 2,
        "new": 1,
        "stale": 1,
        "up to date": 1,
        "missing input": 3,
    }
    assert {json.loads(line)["job_id"] for line in plan.manifest_lines().splitlines()} == {"t1.fr", "t2.es"}
    # other options make every committed output stale, and say why
    other = plan_catalog(entries, str(out), DubOptions(crf=20), weights)
    assert {e.reason for e in other.entries if e.entry.job_id == "t1.es"} == {"options changed"}


def test_a_speaker_column_reaches_the_job_and_its_key(tmp_path: Path) -> None:
    video, audio = tmp_path / "v.mp4", tmp_path / "a.wav"
    video.write_bytes(b"video"), audio.write_bytes(b"audio")
    catalog = tmp_path / "catalog.csv"
    catalog.write_text(f"title_id,video,audio_es,speaker\nt1,{video},{audio},\"0.3,0.5\"\nt2,{video},{audio},\n")
    entries = {e.job_id: e for e in load_catalog(str(catalog))}
    assert entries["t1.es"].speaker == "0.3,0.5" and entries["t2.es"].speaker is None
    options, out = DubOptions(), tmp_path / "out"
    plan = {e.entry.job_id: e for e in plan_catalog(list(entries.values()), str(out), options, "weights").entries}
    assert plan["t1.es"].job().overrides() == {"speaker": "0.3,0.5"} and plan["t2.es"].job().overrides() == {}
    output = out / "t1" / "es.mp4"  # committed by the batch-wide options: stale for the title's own speaker
    output.parent.mkdir(parents=True)
    output.write_bytes(b"mp4")
    sums = {"video": checksum(str(video), "video"), "audio": checksum(str(audio), "audio")}
    report = {"job_key": job_key(str(video), str(audio), str(output), sums, options, "weights"), "checksums": sums}
    Path(report_uri(str(output))).write_text(json.dumps({**report, "options": options.model_dump(mode="json")}))
    again = {e.entry.job_id: e for e in plan_catalog(list(entries.values()), str(out), options, "weights").entries}
    assert again["t1.es"].status == STALE and again["t1.es"].reason == "options changed"


def test_generator_columns_reach_the_job_and_a_changed_reference_makes_it_stale(tmp_path: Path) -> None:
    video, audio, reference = tmp_path / "v.mp4", tmp_path / "a.wav", tmp_path / "ref.mp4"
    video.write_bytes(b"video"), audio.write_bytes(b"audio"), reference.write_bytes(b"actor")
    catalog = tmp_path / "catalog.csv"
    catalog.write_text(f"title_id,video,audio_es,generator,style_reference\nt1,{video},{audio},style,{reference}\n")
    (entry,) = load_catalog(str(catalog))
    options, out = DubOptions(), tmp_path / "out"
    (planned,) = plan_catalog([entry], str(out), options, "weights").entries
    assert planned.job().overrides() == {"generator": "style", "style_reference": str(reference)}
    own = options.model_copy(update=planned.job().overrides())
    output = out / "t1" / "es.mp4"
    output.parent.mkdir(parents=True)
    output.write_bytes(b"mp4")
    sums = {"video": checksum(str(video), "video"), "audio": checksum(str(audio), "audio")}
    sums["style_reference"] = checksum(str(reference), "style reference")
    report = {"job_key": job_key(str(video), str(audio), str(output), sums, own, "weights"), "checksums": sums}
    Path(report_uri(str(output))).write_text(json.dumps({**report, "options": own.model_dump(mode="json")}))
    assert plan_catalog([entry], str(out), options, "weights").entries[0].status == CURRENT
    reference.write_bytes(b"another take")  # the actor's reference clip was replaced
    (stale,) = plan_catalog([entry], str(out), options, "weights").entries
    assert stale.status == STALE and stale.reason == "style reference changed"
