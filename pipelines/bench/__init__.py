"""Benchmarks: throughput and latency, compute, memory, detection quality (SKAB, TEP, the fault
taxonomy), alert rates across a model swap. Each prints figures; none is a test."""
