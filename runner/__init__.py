"""runner: a paper-trading runner for strategies, driven by a YAML config or plain Python."""

__version__ = "0.1.0"
