"""Pipeline stages and the records they pass; no Ray imports here (see pipeline/README in DESIGN)."""
