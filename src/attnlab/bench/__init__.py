"""Benchmarks (``attnlab bench …``): timings as ratios measured in one run, never in tests."""
