"""Azure ML v1's `azureml.core.script_run`: runlab's objects under their v1 names."""

from runlab.sdk.run import Run as ScriptRun

__all__ = ["ScriptRun"]
