"""aggregator: a newsroom's feed-aggregation pipeline."""

__version__ = "0.1.0"
