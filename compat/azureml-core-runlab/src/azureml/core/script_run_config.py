"""Azure ML v1's `azureml.core.script_run_config`: runlab's objects under their v1 names."""

from runlab.sdk.script_run_config import ScriptRunConfig

__all__ = ["ScriptRunConfig"]
