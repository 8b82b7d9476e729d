"""Azure ML v1's `azureml.core.runconfig`: runlab's objects under their v1 names."""

from runlab.sdk.job_config import (
    DEFAULT_CPU_IMAGE,
    DEFAULT_GPU_IMAGE,
    DockerConfiguration,
    MpiConfiguration,
    PyTorchConfiguration,
    TensorflowConfiguration,
)
from runlab.sdk.script_run_config import RunConfiguration

__all__ = ["DEFAULT_CPU_IMAGE", "DEFAULT_GPU_IMAGE", "DockerConfiguration", "MpiConfiguration", "PyTorchConfiguration",
           "RunConfiguration", "TensorflowConfiguration"]
