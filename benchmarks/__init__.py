"""Latency, throughput, scaling and quality-vs-speed benchmarks of the runtime (DESIGN 10); entry point ``run.py``."""
