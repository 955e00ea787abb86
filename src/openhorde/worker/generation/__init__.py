"""Turning one job's parameters into images: pipelines, samplers, prompts, adapters, safety."""
