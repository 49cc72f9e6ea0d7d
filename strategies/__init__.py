"""The strategy plugin interface (base.py) and the built-in strategies, one module each."""
