"""Where pipelines come from: the catalogue, the model store, the loaders and the built-in tiny model."""
