"""Azure ML v1's `azureml.core.workspace`: runlab's objects under their v1 names."""

from runlab.sdk.workspace import Workspace

__all__ = ["Workspace"]
