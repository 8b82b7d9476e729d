# a control script using more of the Azure ML v1 API, with v1's import lines
import json
import os

from azureml.core import Dataset, Environment, Experiment, Model, Run, ScriptRunConfig, Workspace
from azureml.core.authentication import InteractiveLoginAuthentication
from azureml.core.conda_dependencies import CondaDependencies
from azureml.core.runconfig import DockerConfiguration, RunConfiguration
from azureml.core.webservice import AciWebservice, Webservice
from azureml.exceptions import ActivityFailedException, WebserviceException

out = {}
ws = Workspace.from_config(auth=InteractiveLoginAuthentication())
out["subscription_id"] = ws.subscription_id
datastore = ws.get_default_datastore()
os.makedirs("tables", exist_ok=True)
with open("tables/t.csv", "w") as f:
    f.write("a,b\n1,x\n2,y\n3,z\n")
datastore.upload(src_dir="./tables", target_path="tables", overwrite=True, show_progress=False)
table = Dataset.Tabular.from_delimited_files(path=(datastore, "tables/t.csv"))
table = table.register(workspace=ws, name="v1-table", create_new_version=True)

experiment = Experiment(workspace=ws, name="v1-api")
rc = RunConfiguration()
rc.environment_variables["GREETING"] = "hallo"
rc.environment.docker.enabled = True
rc.data = {"table": table.as_named_input("table")}
config = ScriptRunConfig(source_directory="./src", script="train_v1.py", run_config=rc, compute_target="cpu-cluster",
                         docker_runtime_config=DockerConfiguration(use_docker=True))
run = experiment.submit(config)
run.wait_for_completion(show_output=False)
out["status"] = run.get_status()
out["metrics"] = run.get_metrics()
out["tags"] = run.get_tags()
out["same_run"] = Run.get(ws, run.id).id == run.id
out["listed"] = [r.id for r in Run.list(experiment)]
out["models"] = [m.name for m in Model.list(ws)]
out["docker"] = run.get_details()["runDefinition"].get("docker")

failing = experiment.submit(ScriptRunConfig(source_directory="./src", script="fail_v1.py"))
try:
    failing.wait_for_completion(raise_on_error=True)
    out["raised"] = None
except ActivityFailedException as exc:
    out["raised"] = type(exc).__name__
details = failing.get_details()
out["error_message"] = details["error"]["error"]["message"]
out["driver_log"] = [text for name, text in failing.get_details_with_logs()["logFiles"].items()
                     if name.endswith("70_driver_log.txt")]

out["minimal"] = Environment.get(ws, "AzureML-Minimal").name
cd = CondaDependencies.create(pip_packages=["six"], python_version="3.11")
cd.merge_dependencies(CondaDependencies.create(pip_packages=["attrs"]))
out["conda_file"] = open(cd.save("conda_env.yml")).read()
AciWebservice.deploy_configuration(cpu_cores=1, memory_gb=1)
try:
    Webservice(ws, "my-service")
except WebserviceException as exc:
    out["webservice"] = str(exc)
print("V1-RESULT " + json.dumps(out))
