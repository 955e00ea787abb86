"""OpenHorde: an open horde for Stable Diffusion image generation (AI Horde v2 compatible)."""

__version__ = "0.1.0"
