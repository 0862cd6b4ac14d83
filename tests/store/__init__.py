"""Tests of aggregator.store."""
