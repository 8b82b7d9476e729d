"""Azure ML v1's `azureml.data`: runlab's objects under their v1 names."""

from runlab.sdk.dataset import DataType, FileDataset, TabularDataset
from runlab.sdk.output_dataset import OutputFileDatasetConfig

__all__ = ["DataType", "FileDataset", "OutputFileDatasetConfig", "TabularDataset"]
