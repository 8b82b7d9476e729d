# tutorial/04-run-pytorch.py
from runlab import Workspace, Experiment, Environment, ScriptRunConfig  # was: from azureml.core import ...

if __name__ == "__main__":
    ws = Workspace.from_config()
    experiment = Experiment(workspace=ws, name='day1-experiment-train')
    config = ScriptRunConfig(source_directory='./src', script='train.py', compute_target='cpu-cluster')

    # set up pytorch environment
    env = Environment.from_conda_specification(name='pytorch-env', file_path='./.azureml/pytorch-env.yml')
    config.run_config.environment = env

    run = experiment.submit(config)

    aml_url = run.get_portal_url()
    print(aml_url)
    run.wait_for_completion(show_output=True)  # added: stream the driver log until the run ends
