"""Kafka adapters: clients, topics and the dead-letter sink."""
