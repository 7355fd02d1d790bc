"""Observability adapters: Prometheus metrics and the consumer's health state."""
