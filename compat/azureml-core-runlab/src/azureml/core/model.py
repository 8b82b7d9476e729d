"""Azure ML v1's `azureml.core.model`: runlab's objects under their v1 names."""

from runlab.sdk.model import Model
from runlab.sdk.webservice import InferenceConfig

__all__ = ["InferenceConfig", "Model"]
