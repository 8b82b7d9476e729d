"""Azure ML v1's `azureml.data.dataset_consumption_config`: runlab's objects under their v1 names."""

from runlab.sdk.dataset import DatasetConsumptionConfig

__all__ = ["DatasetConsumptionConfig"]
