"""Azure ML v1's `azureml.core.compute`: runlab's objects under their v1 names."""

from runlab.sdk.compute import AmlCompute, ComputeInstance, ComputeTarget

__all__ = ["AmlCompute", "ComputeInstance", "ComputeTarget"]
