"""Names of the log files every submitted run has, as Azure ML v1 names them."""

BUILD_LOG = "azureml-logs/20_image_build_log.txt"  # the environment build (or the cache hit)
AGENT_LOG = "azureml-logs/55_agent_log.txt"  # what the agent did with the run, step by step
DRIVER_LOG = "azureml-logs/70_driver_log.txt"  # the script's stdout and stderr
LOG_PREFIXES = ("azureml-logs/", "logs/", "user_logs/")
