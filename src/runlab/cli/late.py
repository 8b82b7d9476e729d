"""What command modules that ``runlab.cli.main`` imports at its own import take from it, looked up
when a command runs (importing main from them directly would be circular)."""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(fn: F) -> F:
    """runlab.cli.main.friendly_errors (one-line errors), looked up when the command runs."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from runlab.cli.main import friendly_errors as wrap

        return wrap(fn)(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
