"""Azure ML v1's `azureml.core.dataset`: runlab's objects under their v1 names."""

from runlab.sdk.dataset import Dataset

__all__ = ["Dataset"]
