# a control script using Azure ML v1's experiment, run, workspace, environment and datastore calls
import json
import os
import shutil
import sys
import zipfile

from azureml.core import Datastore, Environment, Experiment, Run, ScriptRunConfig, Workspace
from azureml.core.conda_dependencies import CondaDependencies
from azureml.exceptions import UserErrorException

out = {}
ws = Workspace.from_config()
out["mlflow_uri"] = ws.get_mlflow_tracking_uri()
experiment = Experiment(workspace=ws, name="v1-more")
experiment.set_tags({"project": "cifar"})
experiment.tag("owner", "me")

env = Environment.from_docker_image("v1-image-env", "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04")
env.python.user_managed_dependencies = True
env.python.interpreter_path = sys.executable
env.environment_variables["api-key"] = "s3cr3t"
env.save_to_directory("saved-env", overwrite=True)
env = Environment.load_from_directory("saved-env")
config = ScriptRunConfig(source_directory="./src", script="train_more_v1.py", compute_target="cpu-cluster",
                         environment=env)
run = experiment.submit(config)
run.wait_for_completion(show_output=False)
out["status"] = run.get_status()
out["display_name"] = run.display_name
run.display_name = "renamed"
out["renamed"] = Run.get(ws, run.id).display_name
out["metrics"] = run.get_metrics(None, True, "child")
out["children"] = sorted(c.get_tags()["lr"] for c in run.get_children(False, None, None, "child", "Completed"))
details = run.get_details()
out["submitted_by"] = bool(details["submittedBy"])
out["output_datasets"], out["warnings"] = details["outputDatasets"], details["warnings"]
environment = details["runDefinition"]["environment"]
out["docker"] = environment["docker"]
out["user_managed"] = environment["python"]["userManagedDependencies"]
out["conda"] = environment["python"]["condaDependencies"]
got = run.get_environment()
out["environment"] = [type(got).__name__, got.name, got.docker.base_image]
out["logs"] = sorted(os.path.relpath(p, "all-logs").replace(os.sep, "/") for p in run.get_all_logs("all-logs"))
snapshot = run.restore_snapshot(path="restored")
out["snapshot_zip"] = [os.path.basename(snapshot) == run.get_snapshot_id() + ".zip",
                       sorted(zipfile.ZipFile(snapshot).namelist())]
out["clean"] = run.clean()
run.download_files(prefix="logs/", output_directory="downloaded", append_prefix=False)
out["downloaded"] = sorted(os.listdir("downloaded"))

experiment.archive()
out["active"] = [e.name for e in Experiment.list(ws)]
out["archived"] = [e.name for e in Experiment.list(ws, view_type="ArchivedOnly")]
experiment.reactivate()
out["tags"] = Experiment(ws, "v1-more").tags

cd = CondaDependencies.create(pip_packages=["six"])
wheel = "mypkg-1.0-py3-none-any.whl"
open(wheel, "wb").write(b"wheel bytes")
cd.add_pip_package(Environment.add_private_pip_wheel(ws, wheel, exist_ok=True))
out["wheel_kept"] = os.path.isfile(cd.pip_packages[-1])
try:
    Datastore.register_azure_blob_container(workspace=ws, datastore_name="images", container_name="cifar",
                                            account_name="account", account_key="key")
except UserErrorException as exc:  # never: that call is not a user error, it is not supported here
    out["blob"] = "user error: " + str(exc)
except Exception as exc:
    out["blob"] = f"{type(exc).__name__}: {exc}"
out["models"] = sorted(ws.models)
shutil.rmtree("restored")
print("V1-RESULT " + json.dumps(out))
