"""ControlNet: annotators that make control maps, and ControlNet pipelines around a loaded model."""
