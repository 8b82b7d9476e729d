"""Azure ML v1's `azureml.core.environment`: runlab's objects under their v1 names."""

from runlab.sdk.environment import CondaDependencies, DockerSection, Environment, PythonSection

__all__ = ["CondaDependencies", "DockerSection", "Environment", "PythonSection"]
