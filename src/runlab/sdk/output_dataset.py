"""``OutputFileDatasetConfig``: a folder a run writes (Azure ML v1's output dataset).

Passed as an argument it becomes the relative path ``outputs/<name>`` in the run's folder; what the
script writes there is uploaded with the run's ``./outputs`` when the run ends (``run.download_files
(prefix='outputs/<name>')``). A ``destination=(datastore, path)`` is recorded and not written to:
runlab keeps run outputs with the run.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from runlab.core.errors import UserError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class OutputFileDatasetConfig:
    """``OutputFileDatasetConfig(name=None, destination=None)``: an output folder of the run."""

    def __init__(self, name: str | None = None, destination: Any = None, source: str | None = None,
                 **_azure: Any) -> None:
        name = name or f"output_{uuid.uuid4().hex[:8]}"
        if not _NAME.match(name):
            raise UserError(f"OutputFileDatasetConfig name {name!r}: use letters, digits and '_' (not first a digit)",
                            name=name)
        self.name = name
        self.destination = destination
        self.source = source

    def as_mount(self, *_args: Any, **_kwargs: Any) -> "OutputFileDatasetConfig":
        return self

    def as_upload(self, *_args: Any, **_kwargs: Any) -> "OutputFileDatasetConfig":
        return self

    def register_on_complete(self, *_args: Any, **_kwargs: Any) -> "OutputFileDatasetConfig":
        """Accepted; the folder stays with the run's outputs (it is not registered as a dataset)."""
        return self

    def __fspath__(self) -> str:
        return f"outputs/{self.name}"

    def __repr__(self) -> str:
        return f"OutputFileDatasetConfig(name={self.name!r})"
