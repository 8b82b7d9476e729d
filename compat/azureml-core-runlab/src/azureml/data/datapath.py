"""Azure ML v1's `azureml.data.datapath`: runlab's objects under their v1 names."""

from runlab.sdk.datastore import DataPath

__all__ = ["DataPath"]
