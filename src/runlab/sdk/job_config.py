"""The job configurations a ``ScriptRunConfig`` accepts beside the script: Docker settings and the
distributed launch of Azure ML v1 (``azureml.core.runconfig``).

runlab builds Python environments, not images, and runs each job on the local pool: these objects
are accepted and recorded in the run's definition (``runDefinition``) so v1 code runs unchanged;
what they ask for beyond that has no effect here (each class says what).
"""

from __future__ import annotations

from typing import Any

# Azure ML v1's default base images: names only, recorded; no image is pulled or built.
DEFAULT_CPU_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04"
DEFAULT_GPU_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-cuda11.1-cudnn8-ubuntu20.04"


class DockerConfiguration:
    """``DockerConfiguration(use_docker=True)``: accepted and recorded; runs use a built virtual
    environment, never a container."""

    def __init__(self, use_docker: bool | None = None, shared_volumes: bool = True, arguments: Any = None,
                 shm_size: str | None = None, **_azure: Any) -> None:
        self.use_docker = use_docker
        self.shared_volumes = shared_volumes
        self.arguments = list(arguments or [])
        self.shm_size = shm_size

    def to_dict(self) -> dict[str, Any]:
        return {"useDocker": self.use_docker, "sharedVolumes": self.shared_volumes, "arguments": self.arguments,
                "shmSize": self.shm_size}


class _DistributedConfiguration:
    kind = ""

    def __init__(self, node_count: int = 1) -> None:
        self.node_count = node_count

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "nodeCount": self.node_count,
                **{k: v for k, v in vars(self).items() if k != "node_count"}}


class PyTorchConfiguration(_DistributedConfiguration):
    """``PyTorchConfiguration(process_count=N, node_count=M, communication_backend='Nccl')``: recorded in the
    run's definition; the run starts one process on the local pool."""

    kind = "PyTorch"

    def __init__(self, communication_backend: str = "Nccl", process_count: int | None = None, node_count: int = 1,
                 **_azure: Any) -> None:
        super().__init__(node_count)
        self.communication_backend = communication_backend
        self.process_count = process_count


class MpiConfiguration(_DistributedConfiguration):
    """``MpiConfiguration(process_count_per_node=1, node_count=1)``: recorded; the run starts one process."""

    kind = "Mpi"

    def __init__(self, process_count_per_node: int = 1, node_count: int = 1, **_azure: Any) -> None:
        super().__init__(node_count)
        self.process_count_per_node = process_count_per_node


class TensorflowConfiguration(_DistributedConfiguration):
    """``TensorflowConfiguration(worker_count=1, parameter_server_count=1)``: recorded; the run starts one process."""

    kind = "TensorFlow"

    def __init__(self, worker_count: int = 1, parameter_server_count: int = 1, **_azure: Any) -> None:
        super().__init__(1)
        self.worker_count = worker_count
        self.parameter_server_count = parameter_server_count
