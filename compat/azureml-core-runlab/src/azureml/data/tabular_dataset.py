"""Azure ML v1's `azureml.data.tabular_dataset`: runlab's objects under their v1 names."""

from runlab.sdk.dataset import TabularDataset

__all__ = ["TabularDataset"]
