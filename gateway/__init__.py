"""Emergency-resource data-exchange gateway (前置机) and township hub."""

__version__ = "0.1.0"
