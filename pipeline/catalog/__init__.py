"""Nightly catalogue dubbing: which title x language is new or stale, and the run under a lease."""
