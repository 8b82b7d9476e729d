"""Run states, as Azure ML v1 names them."""

from __future__ import annotations

import enum


class RunStatus(str, enum.Enum):
    NOT_STARTED = "NotStarted"
    QUEUED = "Queued"
    PREPARING = "Preparing"
    STARTING = "Starting"
    RUNNING = "Running"
    FINALIZING = "Finalizing"
    CANCEL_REQUESTED = "CancelRequested"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELED = "Canceled"

    def __str__(self) -> str:
        return self.value

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    @classmethod
    def parse(cls, text: str) -> "RunStatus":
        """Accept ``Completed``, ``completed`` or ``COMPLETED``."""
        for status in cls:
            if text.lower() in (status.value.lower(), status.name.lower()):
                return status
        names = ", ".join(s.value for s in cls)
        from runlab.core.errors import UserError

        raise UserError(f"unknown run status {text!r}: use one of {names}")


TERMINAL_STATUSES = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED})
ACTIVE_STATUSES = frozenset(set(RunStatus) - TERMINAL_STATUSES - {RunStatus.NOT_STARTED})


class RunType(str, enum.Enum):
    INTERACTIVE = "interactive"  # Experiment.start_logging()
    SUBMITTED = "submitted"  # Experiment.submit()
    OFFLINE = "offline"  # Run.get_context() outside a submitted run
    CHILD = "child"

    def __str__(self) -> str:
        return self.value
