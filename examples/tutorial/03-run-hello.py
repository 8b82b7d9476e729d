# tutorial/03-run-hello.py
from runlab import Workspace, Experiment, ScriptRunConfig  # was: from azureml.core import ...

ws = Workspace.from_config()
experiment = Experiment(workspace=ws, name='day1-experiment-hello')

config = ScriptRunConfig(source_directory='./src', script='hello.py', compute_target='cpu-cluster')

run = experiment.submit(config)
aml_url = run.get_portal_url()
print(aml_url)
run.wait_for_completion(show_output=True)  # added: stream the driver log until the run ends
