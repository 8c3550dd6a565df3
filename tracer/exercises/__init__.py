"""Exercises: reading and judging answers, the mistake catalogue, per-student sheets."""
