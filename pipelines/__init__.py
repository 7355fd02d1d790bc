"""Producer pipelines: synthetic sensor fleets, CSV replay, the demo and benchmarks."""
