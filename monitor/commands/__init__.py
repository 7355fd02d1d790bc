"""Entry points: the `monitor` command line and its sub-commands."""
