"""Simulations for benchmarks and the demo: synthetic label noise and a reviewer who knows the truth."""
