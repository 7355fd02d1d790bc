"""The pure core: the message contract, windows, order, scoring math, thresholds, incidents, evidence
and the engine that judges. No Kafka, SQL, HTTP or file I/O."""
