"""Name rules, the same as Azure ML v1's, checked in one place.

Every id or name that becomes part of a path (run ids; workspace, experiment and environment
names) first follows **the id rule**: 1 to :data:`MAX_ID_LENGTH` ASCII letters, digits, ``_``,
``-`` and ``.``, not starting with ``.`` or ``-``. Such an id is exactly one file name: never
``.`` or ``..``, never absolute, without a separator, a NUL or a character a file system may
refuse, and short enough for any file system. Paths are built only from checked ids. The
workspace, experiment and environment rules are Azure's, stricter, on top of the id rule.
Values are checked by length before any pattern, so a 50 MB name is refused at once.
"""

from __future__ import annotations

import re

from runlab.core.errors import InvalidNameError

MAX_ID_LENGTH = 255  # a file name's limit on Linux and macOS; ids are ASCII, so bytes == characters
ID_RULE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")  # with fullmatch, after the length check
ID_RULE_TEXT = f"1 to {MAX_ID_LENGTH} ASCII letters, digits, '_', '-' or '.', not starting with '.' or '-'"
RUN_ID_EXAMPLE = "'day1-experiment_1700000000_abcd1234' (or '<parent run id>_0' for a child run)"
_ID_CHAR = re.compile(r"[A-Za-z0-9_.\-]")
_SHOWN = 40  # characters of a bad value repeated in a message

WORKSPACE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]{2,32}")
EXPERIMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,254}")
INPUT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
ENVIRONMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}")
DATASTORE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-]{0,254}")
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}")
MAX_METRIC_NAME = 255


def shown(value: object) -> str:
    """``repr(value)``, cut to a readable length (a 50 MB name is not repeated in a message)."""
    if isinstance(value, str) and len(value) > _SHOWN:
        return f"{value[:_SHOWN]!r}... ({len(value):,} characters)"
    text = repr(value)
    return text if len(text) <= 2 * _SHOWN else text[: 2 * _SHOWN] + "..."


def id_problem(value: object) -> str | None:
    """What keeps ``value`` from following the id rule, or None when it follows it."""
    if not isinstance(value, str):
        return f"it is not a str but {type(value).__name__}"
    if not value:
        return "it is empty"
    if len(value) > MAX_ID_LENGTH:
        return f"it has {len(value):,} characters, more than {MAX_ID_LENGTH}"
    if ID_RULE.fullmatch(value):
        return None
    bad = next((c for c in value if not _ID_CHAR.fullmatch(c)), None)
    return f"it holds {bad!r}" if bad is not None else f"it starts with {value[0]!r}"


def check_id(value: object, what: str = "id", example: str = RUN_ID_EXAMPLE) -> str:
    """``value`` when it follows the id rule; else :class:`InvalidNameError` saying what is wrong."""
    problem = id_problem(value)
    if problem is None and isinstance(value, str):
        return value
    raise InvalidNameError(
        f"invalid {what} {shown(value)}: {problem}. A {what} is {ID_RULE_TEXT}, for example {example}",
        name=value,
    )


def check_run_id(value: object) -> str:
    """``value`` when it is a valid run id (the id rule); else :class:`InvalidNameError`.

    Run ids are ``<experiment>_<unix seconds>_<8 hex>`` (as Azure ML v1 forms them), child run
    ids ``<parent id>_<8 hex>``, or what the caller chose; every one becomes a folder name.
    """
    return check_id(value, "run id")


def bounded_id(prefix: str, tail: str) -> str:
    """``prefix + tail``, the prefix cut so that the id keeps within :data:`MAX_ID_LENGTH`
    (the tail is what makes it unique)."""
    return prefix[: max(0, MAX_ID_LENGTH - len(tail))] + tail


def _check_named(value: object, what: str, rule: re.Pattern[str], looks_like: str, example: str) -> str:
    problem = id_problem(value)
    if problem is None and isinstance(value, str) and rule.fullmatch(value):
        return value
    why = f"{problem}; " if problem is not None else ""
    raise InvalidNameError(f"invalid {what} {shown(value)}: {why}use {looks_like} (for example {example!r})",
                           name=value)


def check_workspace_name(name: object) -> str:
    return _check_named(name, "workspace name", WORKSPACE_NAME,
                        "3 to 33 letters, digits, '_' or '-', starting with a letter or digit", "my-workspace")


def check_experiment_name(name: object) -> str:
    return _check_named(name, "experiment name", EXPERIMENT_NAME,
                        "1 to 255 letters, digits, '_' or '-', starting with a letter or digit",
                        "day1-experiment-hello")


def check_environment_name(name: object) -> str:
    return _check_named(name, "environment name", ENVIRONMENT_NAME,
                        "1 to 255 letters, digits, '_', '-' or '.', starting with a letter or digit", "pytorch-env")


def check_datastore_name(name: object) -> str:
    """``name`` when it can name a datastore (Azure's letters, digits and '_', and '-'); else
    :class:`InvalidNameError`."""
    return _check_named(name, "datastore name", DATASTORE_NAME,
                        "1 to 255 letters, digits, '_' or '-', starting with a letter, digit or '_'",
                        "workspaceblobstore")


def check_model_name(name: object) -> str:
    """``name`` when it can name a registered model (Azure's rule: letters, digits, '-', '_' and '.',
    starting with a letter or digit, up to 255 characters; no spaces); else :class:`InvalidNameError`."""
    return _check_named(name, "model name", MODEL_NAME,
                        "1 to 255 letters, digits, '-', '_' or '.', starting with a letter or digit, no spaces",
                        "sklearn-mnist")


# Metric names under this prefix are runlab's system metrics (tracking.sysmetrics); run.log() refuses them.
SYSTEM_METRIC_PREFIX = "sys/"


def check_metric_name(name: object) -> str:
    if not isinstance(name, str):
        raise InvalidNameError(
            f"metric name must be a str, got {type(name).__name__} {shown(name)}: "
            "call run.log('loss', value)",
            name=name,
        )
    if not name or len(name) > MAX_METRIC_NAME:
        raise InvalidNameError(
            f"metric name must have 1 to {MAX_METRIC_NAME} characters, got {len(name)}",
            name=name,
        )
    if not storable_text(name):
        raise InvalidNameError(
            f"metric name {shown(name)} cannot be stored: it holds a NUL character or a lone surrogate "
            "(text that is not valid Unicode, often from decoding bytes with errors='surrogateescape'); "
            "pass a clean str",
            name=name,
        )
    return name


def storable_text(text: str) -> bool:
    """True when ``text`` can be stored by every store (UTF-8 encodable, no NUL: PostgreSQL refuses it)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_input_name(name: object) -> str:
    if not isinstance(name, str) or not INPUT_NAME.fullmatch(name):
        raise InvalidNameError(
            f"invalid input name {shown(name)}: it becomes an environment variable, so use letters, "
            "digits and '_', starting with a letter or '_' (for example 'input')",
            name=name,
        )
    return name
