"""Tests of aggregator.publish.publisher."""
