"""Torch modules of MuseTalk and the code that loads their published weights; no Ray, no media."""
