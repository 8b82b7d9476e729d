"""Azure ML v1's `azureml.core.experiment`: runlab's objects under their v1 names."""

from runlab.sdk.experiment import Experiment

__all__ = ["Experiment"]
