"""Azure ML v1's `azureml.data.file_dataset`: runlab's objects under their v1 names."""

from runlab.sdk.dataset import FileDataset

__all__ = ["FileDataset"]
