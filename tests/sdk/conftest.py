"""Fixtures of the dataset tests: where their files lie (tests/dataset_places.py; its S3 bucket is on
the moto server of tests/datastore_fixtures.py, which tests/conftest.py loads as a plugin)."""

from dataset_places import place

__all__ = ["place"]
