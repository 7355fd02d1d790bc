"""Retraining: history from Kafka (or a file), exclusion of anomalous data, the promotion gate, orchestration."""
