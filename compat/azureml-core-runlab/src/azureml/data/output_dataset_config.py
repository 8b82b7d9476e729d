"""Azure ML v1's `azureml.data.output_dataset_config`: runlab's objects under their v1 names."""

from runlab.sdk.output_dataset import OutputFileDatasetConfig

__all__ = ["OutputFileDatasetConfig"]
