"""Alchemy models: captioning (BLIP) and interrogation (CLIP ranking of term lists), loaded with transformers."""
