"""Faces in frames: landmarks over time, shot cuts, crop geometry, parsing masks, blending."""
