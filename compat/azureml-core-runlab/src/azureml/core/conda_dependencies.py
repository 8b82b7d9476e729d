"""Azure ML v1's `azureml.core.conda_dependencies`: runlab's objects under their v1 names."""

from runlab.sdk.environment import CondaDependencies

__all__ = ["CondaDependencies"]
