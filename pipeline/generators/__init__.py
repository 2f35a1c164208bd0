"""The generators behind the model stage: MuseTalk and the style-preserving model, one interface."""
