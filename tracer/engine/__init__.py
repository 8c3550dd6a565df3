"""The engine: the graph and its nodes, the chapter file, training, the trace."""
