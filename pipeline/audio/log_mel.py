"""The SyncNet's audio input: an 80-bin log-mel at 100 Hz (25 ms Hann windows, 10 ms hop), 4 per video frame.

Built on transformers' audio utilities with whisper's filter bank (slaney), clipped 8 decades
below the peak and scaled to about [-1, 1] as whisper does, but per clip rather than per 30 s window.
"""

from __future__ import annotations

import numpy as np
from transformers.audio_utils import mel_filter_bank, spectrogram, window_function

from musedub.models.constants import SAMPLE_RATE
from musedub.models.syncnet import MEL_BINS, MEL_PER_FRAME, SYNC_FRAMES

N_FFT = 400
HOP = 160
_FILTERS = mel_filter_bank(1 + N_FFT // 2, MEL_BINS, 0.0, 8000.0, SAMPLE_RATE, norm="slaney", mel_scale="slaney")
_WINDOW = window_function(N_FFT, "hann")


def log_mel(samples: np.ndarray) -> np.ndarray:
    """16 kHz mono (n,) -> float32 (80, n // 160) log-mel."""
    power = spectrogram(
        samples.astype(np.float32), _WINDOW, N_FFT, HOP, power=2.0, mel_filters=_FILTERS, log_mel="log10"
    )
    power = power[:, : len(samples) // HOP]  # (80, T): one column per 10 ms
    power = np.maximum(power, power.max(initial=-10.0) - 8.0)
    return ((power + 4.0) / 4.0).astype(np.float32)


def mel_window(mel: np.ndarray, frame: int) -> np.ndarray:
    """The (80, 64) columns under video frames [frame, frame + 16), zero-padded past the end."""
    width = SYNC_FRAMES * MEL_PER_FRAME
    out = np.zeros((mel.shape[0], width), np.float32)
    piece = mel[:, frame * MEL_PER_FRAME : frame * MEL_PER_FRAME + width]
    out[:, : piece.shape[1]] = piece
    return out
