"""Numbers and names the published models fix, importable without torch, transformers or diffusers:
planning a job needs them, and a plan worker should not pay seconds and hundreds of MB of imports."""

from __future__ import annotations

from typing import Literal

SAMPLE_RATE = 16_000  # whisper's input rate
WINDOW_SAMPLES = 30 * SAMPLE_RATE  # whisper's fixed 30 s input
WINDOW_FRAMES = 1500  # encoder frames per window (50 Hz)
CROP_SIZE = 256  # MuseTalk's face crop, a side in pixels
LandmarkBackend = Literal["face-alignment", "dlib"]
PREDICTOR_NAME = "predictor"  # the style generator's files in the weights' style/ folder
RENDERER_NAME = "renderer"
GeneratorName = Literal["musetalk", "style"]  # the face generators a job can name
