"""Tests of aggregator.ingest."""
