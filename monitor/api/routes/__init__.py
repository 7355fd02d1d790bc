"""The API's routers, one per concern: probes (health, readiness, metrics), alerts, the fleet, the models."""
