"""Audio features: absolute 30 s whisper windows, log-mel, per-frame prompts."""
