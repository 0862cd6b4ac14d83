"""Tests of aggregator.config.settings."""
