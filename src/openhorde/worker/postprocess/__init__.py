"""Post-processing of generated images: upscalers, face fixers and background removal (``params.post_processing``)."""
