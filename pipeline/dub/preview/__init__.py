"""Previews a dubbing team looks at instead of reading reports: a self-contained HTML page beside
each output (before/after stills, a mouth clip, a sync plot, the face chosen, length and timings)
and an `index.html` per batch run linking them, with each failed job's error."""

from musedub.pipeline.dub.preview.batch_index import write_batch_index
from musedub.pipeline.dub.preview.job import preview_uri, write_job_preview

__all__ = ["preview_uri", "write_batch_index", "write_job_preview"]
