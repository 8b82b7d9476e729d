"""Azure ML v1's `azureml.exceptions`: runlab's objects under their v1 names."""

from runlab.core.errors import (
    ActivityFailedException,
    AzureMLException,
    ComputeTargetException,
    ExperimentExecutionException,
    ModelNotFoundException,
    ProjectSystemException,
    RunEnvironmentException,
    SnapshotException,
    UserErrorException,
    WebserviceException,
    WorkspaceException,
)

__all__ = ["ActivityFailedException", "AzureMLException", "ComputeTargetException", "ExperimentExecutionException",
           "ModelNotFoundException", "ProjectSystemException", "RunEnvironmentException", "SnapshotException",
           "UserErrorException", "WebserviceException", "WorkspaceException"]
