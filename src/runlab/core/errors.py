"""The one exception tree of runlab.

::

    RunlabError
    ├── UserError                      bad input: the message says what to do instead
    │   ├── InvalidNameError           a run id, a run file name, or a workspace, experiment, environment,
    │   │                              metric or input name breaks its rule (core.names)
    │   ├── InvalidValueError          a value of the wrong type (a list given to ``log``, ...)
    │   ├── ConfigError                config.json missing or malformed
    │   ├── PropertyConflictError      ``add_properties`` tried to change an existing property
    │   ├── SnapshotTooLargeError      (execution.snapshot) source folder over the limits; names the biggest folders
    │   ├── CondaSpecError             (execution.conda) entries pip cannot install, with the fix
    │   ├── PythonNotFoundError        (execution.interpreters) no installed Python fits the pin; lists those there are
    │   ├── RequirementsFileError      (execution.pipconfig) an unreadable requirements file
    │   ├── DatasetPathError           a dataset source escapes its datastore, or matches no file (names what was searched)
    │   ├── DatasetReadError           a dataset file pyarrow cannot read as its format (names the file, and the row)
    │   ├── DatasetConflictError       a registration that would change a registered dataset version
    │   ├── DatasetChangedError        a registered version's file is not the bytes it recorded (size or sha256)
    │   └── ModelPathError             a model path that names none of the run's (or this machine's) files; lists those there are
    ├── NotFoundError                  something named does not exist
    │   ├── WorkspaceNotFoundError
    │   ├── ExperimentNotFoundError
    │   ├── RunNotFoundError
    │   ├── FileNotFoundInRunError
    │   ├── DatastoreNotFoundError     no registered datastore of that name; lists those there are
    │   ├── ObjectNotFoundError        (store.objects) no file of that name in an object store
    │   ├── CondaEnvironmentNotFoundError  (execution.conda) lists where it looked
    │   ├── DatasetNotFoundError       no registered dataset (version) of that name or id
    │   ├── ModelNotFoundError         no registered model (version) of that name or id; lists the versions there are
    │   ├── SecretNotFoundError        ``run.get_secret``: in neither the environment nor the secrets file (names both)
    │   └── ComputeTargetException     (Azure ML's name, kept so tutorial code catches it)
    ├── WorkspaceExistsError           ``Workspace.create`` on an existing name without ``exist_ok``
    ├── AuthenticationError            (server) no token, or one that is unknown, wrong, expired or revoked (401)
    ├── PermissionDeniedError          (server) a valid token whose role may not do this (403)
    ├── StoreError                     the metadata or artifact store failed (``temporary`` False: a retry fails alike)
    │   └── StoreUnavailableError      the store cannot take it now (locked, disk full, server down); ``temporary``
    │       └── StoreBusyError         another writer holds the lock (SQLite busy/locked); clears within seconds
    ├── NotSupportedError              an Azure ML call runlab does not offer (``Model.deploy``: no web services)
    ├── EnvironmentBuildError          (execution.environments) uv failed; the end of the build log and its path
    │   └── EnvironmentBuildCanceled   the build was told to stop (a run canceled while Preparing)
    ├── RunFailedError                 ``wait_for_completion(raise_on_error=True)`` on a failed run
    │   └── ActivityFailedException    (Azure ML's name) what ``wait_for_completion`` raises
    └── WebserviceException        (Azure ML's name, a NotSupportedError) a web service call: none here

Errors carry context (``run_id``, ``path``...) as attributes. Errors from SQLAlchemy, the
file system and HTTP are translated once, at the store boundary, with ``raise ... from exc``.
"""

from __future__ import annotations

from typing import Any, ClassVar


class RunlabError(Exception):
    """Base of every error runlab raises on purpose."""

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = context
        for key, value in context.items():
            setattr(self, key, value)


class UserError(RunlabError, ValueError):
    """The caller passed something runlab cannot use; the message says what to do."""


class InvalidNameError(UserError):
    pass


class InvalidValueError(UserError, TypeError):
    pass


class ConfigError(UserError):
    pass


class PropertyConflictError(UserError):
    pass


class NotFoundError(RunlabError, LookupError):
    pass


class WorkspaceNotFoundError(NotFoundError):
    pass


class ExperimentNotFoundError(NotFoundError):
    pass


class RunNotFoundError(NotFoundError):
    pass


class FileNotFoundInRunError(NotFoundError):
    pass


class ComputeTargetException(NotFoundError):
    """Raised when a compute target is missing or cannot be created (Azure ML's name)."""


class DatastoreNotFoundError(NotFoundError):
    """No registered datastore of that name in the workspace; the message lists those there are."""


class ObjectNotFoundError(NotFoundError):
    """No file (object) of that name in an object store: a local datastore folder or an S3 bucket."""


class DatasetNotFoundError(NotFoundError):
    """No registered dataset (or version, or id) of that name in the workspace."""


class DatasetPathError(UserError):
    """A dataset source that escapes its datastore (``..``), or that matches no file; ``searched``
    says where runlab looked."""


class DatasetReadError(UserError):
    """A dataset file that cannot be read as the dataset's format; ``path`` names it, the message
    repeats pyarrow's reason (with the row, for a malformed delimited file)."""


class DatasetConflictError(UserError):
    """Registering under an existing name what would change its latest version, without
    ``create_new_version=True``."""


class DatasetChangedError(UserError):
    """A file of a registered dataset version no longer holds the bytes the version recorded."""


class ModelNotFoundError(NotFoundError):
    """No registered model (or version, or id) of that name in the workspace."""


class SecretNotFoundError(NotFoundError):
    """``run.get_secret(s)``: no environment variable and no entry of the secrets file of that name;
    ``names`` lists the missing ones, ``path`` the secrets file read."""


class ModelPathError(UserError):
    """A model path that names no file of the run (or of this machine); the message lists what is there."""


class NotSupportedError(RunlabError, NotImplementedError):
    """An Azure ML v1 call that runlab does not offer (deploying web services); the message names it."""


class WorkspaceExistsError(RunlabError):
    pass


class AuthenticationError(RunlabError):
    """A server request without a usable token (none, unknown, wrong, expired, revoked): HTTP 401;
    the message says how to get one (``runlab token create``)."""


class PermissionDeniedError(RunlabError):
    """A valid token whose role does not allow the request (a read-only token writing, a run's token
    touching another run, a write without the studio's CSRF token): HTTP 403."""


class StoreError(RunlabError):
    """The store failed. ``temporary`` says whether the same call can succeed later, unchanged.

    ``temporary`` is False here: retrying fails the same way (a value the store cannot hold, a
    taken id), so callers raise or set the data aside. It is True for
    :class:`StoreUnavailableError` and its subclass :class:`StoreBusyError`: keep the data and
    try again later (the metric flusher journals it; a run handle's own writes retry with
    backoff for ``RUNLAB_STORE_RETRY_TIMEOUT`` seconds).
    """

    temporary: ClassVar[bool] = False


class StoreUnavailableError(StoreError):
    """The store cannot take writes now (locked, disk full, server down); the same call can
    succeed later: the tracking client journals or retries."""

    temporary: ClassVar[bool] = True


class StoreBusyError(StoreUnavailableError):
    """Another writer holds the store's lock (SQLite "database is locked"; a PostgreSQL lock
    timeout, deadlock or serialization failure). It clears by itself within seconds: retry the
    same call after a short wait."""


class RunFailedError(RunlabError):
    pass


class ActivityFailedException(RunFailedError):
    """A run failed (Azure ML's name for what ``wait_for_completion(raise_on_error=True)`` raises);
    ``details`` holds the run's details, ``exit_code`` the script's exit code when it had one."""


class WebserviceException(NotSupportedError):
    """A web service call (``Webservice``, ``Model.deploy``...): runlab deploys no services; the message names it."""


# Azure ML v1's other exception names, for ``except`` clauses of v1 code: each is the runlab class
# raised in that situation, so catching either name catches the same errors.
AzureMLException = RunlabError
UserErrorException = UserError
ProjectSystemException = WorkspaceNotFoundError
WorkspaceException = WorkspaceNotFoundError
ExperimentExecutionException = RunlabError
ModelNotFoundException = ModelNotFoundError
RunEnvironmentException = RunlabError
SnapshotException = UserError
