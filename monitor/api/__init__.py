"""The query surface: `monitor serve` (HTTP API, web page) over the alert store."""
