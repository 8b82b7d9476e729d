"""Azure ML v1's `azureml.data.dataset_factory`: runlab's objects under their v1 names."""

from runlab.sdk.dataset import DataType, FileDatasetFactory, TabularDatasetFactory

__all__ = ["DataType", "FileDatasetFactory", "TabularDatasetFactory"]
