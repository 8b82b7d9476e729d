"""Azure ML's curated environments, by name: what ``Environment.get(ws, 'AzureML-...')`` gives when the
workspace has registered no environment of that name.

Azure ships them as Docker images; runlab defines each as the Python packages that matter to the
scripts using it (documented in the README), built like any environment:

===============================  =========================================================
``AzureML-Minimal``              no packages (the Python runlab runs on)
``AzureML-PyTorch-*``            ``torch``, ``numpy``
``AzureML-sklearn-*``            ``scikit-learn``, ``numpy``, ``pandas``, ``scipy``, ``joblib``
``AzureML-TensorFlow-*``         ``tensorflow``, ``numpy``
``AzureML-lightgbm-*``           ``lightgbm``, ``scikit-learn``, ``numpy``, ``pandas``
===============================  =========================================================

A ``py38``-style part of the name is not used: a Python >= 3.10 is needed inside every run environment.
"""

from __future__ import annotations

import re

from runlab.execution.environments import EnvironmentDefinition

CURATED_PACKAGES: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = (
    (re.compile(r"^AzureML-Minimal$", re.IGNORECASE), ()),
    (re.compile(r"^AzureML-(ACPT-)?PyTorch(-.*)?$", re.IGNORECASE), ("torch", "numpy")),
    (re.compile(r"^AzureML-sklearn(-.*)?$", re.IGNORECASE), ("scikit-learn", "numpy", "pandas", "scipy", "joblib")),
    (re.compile(r"^AzureML-TensorFlow(-.*)?$", re.IGNORECASE), ("tensorflow", "numpy")),
    (re.compile(r"^AzureML-lightgbm(-.*)?$", re.IGNORECASE), ("lightgbm", "scikit-learn", "numpy", "pandas")),
)


def curated_definition(name: str) -> EnvironmentDefinition | None:
    """The definition runlab gives the curated environment ``name``, or None if it is not a curated name."""
    for pattern, packages in CURATED_PACKAGES:
        if pattern.match(name):
            return EnvironmentDefinition(name=name, pip_requirements=packages)
    return None
