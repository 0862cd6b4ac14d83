"""aggregator: fetch feeds on a schedule, store each item once, republish by category."""

__version__ = "0.1.0"
