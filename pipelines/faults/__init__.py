"""The fault suite (`python -m pipelines.faults.chaos`), its kit, the network black hole and the
fuzzers."""
