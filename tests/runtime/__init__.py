"""Tests of aggregator.runtime."""
