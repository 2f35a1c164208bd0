"""Containers and codecs: probe, frames, H.264 segments, audio decode, stitch and mux."""
