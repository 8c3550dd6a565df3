"""The documents: the worked-example model, its rendering, and the figures."""
