"""Weights on disk: the published layout, the model store, random weights, compose and download."""
