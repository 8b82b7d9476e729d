"""The job configurations a ``ScriptRunConfig`` accepts beside the script: Docker settings and the
distributed launch of Azure ML v1 (``azureml.core.runconfig``).

runlab builds Python environments, not images, and runs each job on the local pool (one machine):
these objects are recorded in the run's definition (``runDefinition``) so v1 code runs unchanged.
``PyTorchConfiguration(process_count=N)`` starts N processes (``runlab.execution.distributed``); what
the local pool cannot do (``node_count`` > 1, MPI or TensorFlow jobs of several processes) is refused
at ``experiment.submit``; each class says what.
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
    """``PyTorchConfiguration(process_count=N, node_count=1, communication_backend='Nccl')``: the run starts N
    processes on the local pool with torch.distributed's ``env://`` variables (``RANK``, ``LOCAL_RANK``,
    ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``, ``NODE_RANK``), as Azure does; ``process_count``
    None: one. ``experiment.submit`` raises NotSupportedError for ``node_count`` > 1 (one machine) and
    UserError for ``process_count`` below 1 or above this machine's cores. ``communication_backend`` is
    recorded (the script picks its backend in ``init_process_group``)."""

    kind = "PyTorch"

    def __init__(self, communication_backend: str = "Nccl", process_count: int | None = None, node_count: int = 1,
                 **_azure: Any) -> None:
        super().__init__(node_count)
        self.communication_backend = communication_backend
        self.process_count = process_count


class MpiConfiguration(_DistributedConfiguration):
    """``MpiConfiguration(process_count_per_node=1, node_count=1)``: recorded; the run starts one process.
    More processes or nodes: NotSupportedError at ``experiment.submit`` (no MPI launcher here)."""

    kind = "Mpi"

    def __init__(self, process_count_per_node: int = 1, node_count: int = 1, **_azure: Any) -> None:
        super().__init__(node_count)
        self.process_count_per_node = process_count_per_node


class TensorflowConfiguration(_DistributedConfiguration):
    """``TensorflowConfiguration(worker_count=1, parameter_server_count=1)``: recorded; the run starts one
    process. Other counts: NotSupportedError at ``experiment.submit`` (no TensorFlow cluster here)."""

    kind = "TensorFlow"

    def __init__(self, worker_count: int = 1, parameter_server_count: int = 1, **_azure: Any) -> None:
        super().__init__(1)
        self.worker_count = worker_count
        self.parameter_server_count = parameter_server_count
