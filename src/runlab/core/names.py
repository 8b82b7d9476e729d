"""Name rules, the same as Azure ML v1's, checked in one place."""

from __future__ import annotations

import re

from runlab.core.errors import InvalidNameError

WORKSPACE_NAME = re.compile(r"^[a-zA-Z0-9][\w\-]{2,32}$")
EXPERIMENT_NAME = re.compile(r"^[a-zA-Z0-9][\w\-]{0,254}$")
INPUT_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
ENVIRONMENT_NAME = re.compile(r"^[A-Za-z0-9][\w.\-]{0,254}$")
MAX_METRIC_NAME = 255


def check_workspace_name(name: object) -> str:
    if not isinstance(name, str) or not WORKSPACE_NAME.match(name):
        raise InvalidNameError(
            f"invalid workspace name {name!r}: use 3 to 33 letters, digits, '_' or '-', "
            "starting with a letter or digit (for example 'my-workspace')",
            name=name,
        )
    return name


def check_experiment_name(name: object) -> str:
    if not isinstance(name, str) or not EXPERIMENT_NAME.match(name):
        raise InvalidNameError(
            f"invalid experiment name {name!r}: use 1 to 255 letters, digits, '_' or '-', "
            "starting with a letter or digit (for example 'day1-experiment-hello')",
            name=name,
        )
    return name


def check_metric_name(name: object) -> str:
    if not isinstance(name, str):
        raise InvalidNameError(
            f"metric name must be a str, got {type(name).__name__} {name!r}: "
            "call run.log('loss', value)",
            name=name,
        )
    if not name or len(name) > MAX_METRIC_NAME:
        raise InvalidNameError(
            f"metric name must have 1 to {MAX_METRIC_NAME} characters, got {len(name)}",
            name=name,
        )
    return name


def check_input_name(name: object) -> str:
    if not isinstance(name, str) or not INPUT_NAME.match(name):
        raise InvalidNameError(
            f"invalid input name {name!r}: it becomes an environment variable, so use letters, "
            "digits and '_', starting with a letter or '_' (for example 'input')",
            name=name,
        )
    return name


def check_environment_name(name: object) -> str:
    if not isinstance(name, str) or not ENVIRONMENT_NAME.match(name):
        raise InvalidNameError(
            f"invalid environment name {name!r}: use 1 to 255 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit (for example 'pytorch-env')",
            name=name,
        )
    return name
