"""Azure ML v1's `azureml.core.datastore`: runlab's objects under their v1 names."""

from runlab.sdk.datastore import Datastore

__all__ = ["Datastore"]
