"""`musedub eval` on a real dub of the astronaut clip: FID (Inception-v3, every frame), CSIM, LSE and LMD come
out, a missing output fails on its own, and the report is valid JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from musedub.jobs.cli import main
from musedub.models.weights.layout import WeightsLayout

pytestmark = pytest.mark.slow  # end to end on the shared Ray cluster (and S3)

DATA = Path(__file__).parent.parent / "data"


def test_eval_scores_a_dub_and_isolates_a_bad_job(
    ray_cluster: str, training_weights: WeightsLayout, short_speech: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    video, dubbed = DATA / "astronaut_25fps.mp4", tmp_path / "dub.mp4"
    common = ["--weights", str(training_weights.root), "--landmarks", "dlib"]
    assert main(["dub", "--video", str(video), "--audio", str(short_speech), "--output", str(dubbed), *common]) == 0
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text(
        "\n".join(
            json.dumps({"job_id": job, "video": str(video), "audio": str(short_speech), "output": str(out)})
            for job, out in (("dub", dubbed), ("missing", tmp_path / "never-written.mp4"))
        )
    )
    capsys.readouterr()
    report = tmp_path / "eval.json"
    assert main(["eval", str(manifest), *common, "--address", ray_cluster, "--report", str(report)]) == 0
    summary = json.loads(report.read_text())
    assert summary == json.loads(capsys.readouterr().out)
    assert (summary["jobs"], summary["evaluated"]) == (2, 1)
    assert summary["faces"] == {"real": 75, "fake": 55}  # every frame of each
    assert summary["protocol"]["fid_network"].startswith("Inception-v3 pool3")  # the default, as papers
    assert summary["protocol"]["frames"] == "every frame"
    assert summary["fid"] >= 0 and math.isfinite(summary["fid"])
    assert 0.8 < summary["csim"] <= 1.0  # the same person: only the mouth was regenerated
    assert summary["lse_d"] >= 0 and summary["lse_c"] >= 0
    assert [j["job_id"] for j in summary["per_job"]] == ["dub"]
    (job,) = summary["per_job"]
    assert 0 < job["lmd_frames"] <= 55 and math.isfinite(job["lmd"]) and job["lmd"] >= 0  # mouth vs the source's
    assert (summary["lmd"], summary["lmd_frames"]) == (pytest.approx(job["lmd"]), job["lmd_frames"])
    assert set(summary["failed"]) == {"missing"} and "never-written.mp4" in summary["failed"]["missing"]
    errors = pq.read_table(tmp_path / ".musedub-runs" / summary["run_id"] / "errors").to_pylist()
    assert [(e["item_id"], e["stage"], e["error_class"]) for e in errors] == [("missing", "Eval", "InputError")]
