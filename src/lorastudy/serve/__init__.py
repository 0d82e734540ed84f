"""Serving the result: `predict` labels new texts as the study served them; `export` writes a
self-contained model folder with its model card."""
