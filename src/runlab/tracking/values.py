"""Cheap checks of what a training script logs; programming errors raise at once."""

from __future__ import annotations

from typing import Any

from runlab.core.errors import InvalidValueError

SCALAR_TYPES = (int, float, bool, str)


def coerce_scalar(name: str, value: Any) -> Any:
    """Return ``value`` as int, float, bool or str; raise a clear error for anything else.

    Numpy scalars and 0-d tensors (anything with ``.item()`` that has one element) become
    Python scalars here, so the buffer never keeps a tensor (and its autograd graph) alive.
    """
    if isinstance(value, SCALAR_TYPES):
        return value
    if value is None:
        raise InvalidValueError(f"metric {name!r}: cannot log None; log a number, bool or str", name=name)
    if isinstance(value, (list, tuple, set, frozenset, range)):
        raise InvalidValueError(
            f"metric {name!r}: run.log() takes one value, got a {type(value).__name__}: "
            f"use run.log_list({name!r}, values) for a list, or log each value with a step",
            name=name,
        )
    if isinstance(value, dict):
        raise InvalidValueError(
            f"metric {name!r}: run.log() takes one value, got a dict: use run.log_row({name!r}, **columns) "
            f"or run.log_table({name!r}, {{column: [values]}})",
            name=name,
        )
    item = getattr(value, "item", None)
    if callable(item):
        size = getattr(value, "size", 1)
        size = size() if callable(size) else size
        try:
            if hasattr(value, "numel"):
                size = value.numel()
            if int(size) == 1:
                result = item()
                if isinstance(result, SCALAR_TYPES):
                    return result
        except (TypeError, ValueError):
            pass
        raise InvalidValueError(
            f"metric {name!r}: run.log() takes one value, got an array-like {type(value).__name__} with "
            f"{size} elements: use run.log_list({name!r}, list(values)) or log a single element",
            name=name,
        )
    raise InvalidValueError(
        f"metric {name!r}: cannot log a {type(value).__name__}; log an int, float, bool or str "
        "(or a numpy scalar / 0-d tensor)",
        name=name,
    )


def coerce_list(name: str, values: Any) -> list[Any]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise InvalidValueError(
            f"metric {name!r}: run.log_list() takes a list of values, got {type(values).__name__}: "
            f"use run.log({name!r}, value) for one value",
            name=name,
        )
    tolist = getattr(values, "tolist", None)
    if callable(tolist):
        values = tolist()
    return [coerce_scalar(name, v) for v in values]
