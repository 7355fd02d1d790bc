"""The `monitor run` process: the consumer loop, batches, outages, workers, shutdown."""
