"""Fuzz the REST API from its own OpenAPI schema (schemathesis): no input gives a server error,
and every error is our JSON error body.

Driven from Hypothesis directly (``operation.as_strategy()``): schemathesis's pytest plugin does
not run under pytest 9 here.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

import runlab
from runlab.server.app import create_app

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`"),
]

EXAMPLES_PER_OPERATION = 30


def test_no_input_gives_a_server_error(populated: runlab.Workspace) -> None:
    app = create_app(populated.folder, poll_interval_s=0.01, stream_max_s=2)
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    runs = [None, "mnist_run_11", "mnist_run_08"]  # generated ids (404s), and real runs for the rest
    for operation, run_id in [(op, r) for op in operations for r in runs if r is None or "{run_id}" in op.path]:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def fuzz(case: Any) -> None:
            if run_id is not None:
                case.path_parameters["run_id"] = run_id
            response = case.call()
            where = f"{case.method} {case.formatted_path} {case.query}: {response.status_code} {response.text[:300]}"
            assert response.status_code < 500, where
            if response.status_code >= 400:
                error = response.json()["error"]
                assert error["message"] and error["type"], where
            case.validate_response(response, checks=[not_a_server_error])

        fuzz()
