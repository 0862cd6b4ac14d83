"""Tests of aggregator.serve."""
