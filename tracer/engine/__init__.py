"""The engine: the graph and its nodes, the chapter file, training, the trace."""

from tracer.engine import image_layers  # noqa: F401  (registers the image nodes and layer kinds)
