"""Shared code for every function: naming, configuration, data formats, AWS helpers, the ML recipe."""
