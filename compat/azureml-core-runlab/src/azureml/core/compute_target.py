"""Azure ML v1's `azureml.core.compute_target`: runlab's objects under their v1 names."""

from runlab.core.errors import ComputeTargetException

__all__ = ["ComputeTargetException"]
