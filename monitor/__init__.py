"""Streaming time-series anomaly monitor for sensor fleets."""

__version__ = "0.1.0"
