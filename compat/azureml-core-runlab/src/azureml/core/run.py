"""Azure ML v1's `azureml.core.run`: runlab's objects under their v1 names."""

from runlab.sdk.run import Run, _OfflineRun

ScriptRun = Run  # v1's class of a submitted run: the same class here

__all__ = ["Run", "ScriptRun", "_OfflineRun"]
