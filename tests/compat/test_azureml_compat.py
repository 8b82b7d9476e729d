"""compat/azureml-core-runlab: Azure ML v1's import paths over runlab, and v1 scripts run unchanged."""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import runlab

ROOT = Path(__file__).resolve().parents[2]
COMPAT_SRC = ROOT / "compat" / "azureml-core-runlab" / "src"  # put on sys.path by this folder's conftest
TUTORIAL = ROOT / "examples" / "tutorial"
V1_SCRIPTS = Path(__file__).resolve().parent / "v1_scripts"

EXPORTS = {
    "azureml.core": ["ComputeTarget", "Dataset", "Datastore", "Environment", "Experiment", "Model", "Run",
                     "RunConfiguration", "ScriptRun", "ScriptRunConfig", "VERSION", "Webservice", "Workspace"],
    "azureml.core.authentication": ["AbstractAuthentication", "AzureCliAuthentication",
                                    "InteractiveLoginAuthentication", "MsiAuthentication",
                                    "ServicePrincipalAuthentication", "TokenAuthentication"],
    "azureml.core.compute": ["AmlCompute", "ComputeInstance", "ComputeTarget"],
    "azureml.core.compute_target": ["ComputeTargetException"],
    "azureml.core.conda_dependencies": ["CondaDependencies"],
    "azureml.core.dataset": ["Dataset"],
    "azureml.core.datastore": ["Datastore"],
    "azureml.core.environment": ["CondaDependencies", "DockerSection", "Environment", "PythonSection"],
    "azureml.core.experiment": ["Experiment"],
    "azureml.core.model": ["InferenceConfig", "Model"],
    "azureml.core.run": ["Run", "ScriptRun", "_OfflineRun"],
    "azureml.core.runconfig": ["DEFAULT_CPU_IMAGE", "DEFAULT_GPU_IMAGE", "DockerConfiguration", "MpiConfiguration",
                               "PyTorchConfiguration", "RunConfiguration", "TensorflowConfiguration"],
    "azureml.core.script_run": ["ScriptRun"],
    "azureml.core.script_run_config": ["ScriptRunConfig"],
    "azureml.core.webservice": ["AciWebservice", "AksWebservice", "LocalWebservice", "Webservice"],
    "azureml.core.workspace": ["Workspace"],
    "azureml.data": ["DataType", "FileDataset", "OutputFileDatasetConfig", "TabularDataset"],
    "azureml.data.datapath": ["DataPath"],
    "azureml.data.dataset_consumption_config": ["DatasetConsumptionConfig"],
    "azureml.data.dataset_factory": ["DataType", "FileDatasetFactory", "TabularDatasetFactory"],
    "azureml.data.file_dataset": ["FileDataset"],
    "azureml.data.output_dataset_config": ["OutputFileDatasetConfig"],
    "azureml.data.tabular_dataset": ["TabularDataset"],
    "azureml.exceptions": ["ActivityFailedException", "AzureMLException", "ComputeTargetException",
                           "ExperimentExecutionException", "ModelNotFoundException", "ProjectSystemException",
                           "RunEnvironmentException", "SnapshotException", "UserErrorException",
                           "WebserviceException", "WorkspaceException"],
}


def _modules() -> list[str]:
    names = []
    for path in sorted((COMPAT_SRC / "azureml").rglob("*.py")):
        parts = path.relative_to(COMPAT_SRC).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_every_module_of_the_tree_imports_and_is_pinned() -> None:
    assert _modules() == sorted(EXPORTS)
    for name in _modules():
        module = importlib.import_module(name)
        assert sorted(module.__all__) == EXPORTS[name], name
        for export in module.__all__:
            assert getattr(module, export) is not None, f"{name}.{export}"
    assert not (COMPAT_SRC / "azureml" / "__init__.py").exists()  # a namespace: azureml.* of others can coexist


def test_names_are_runlab_objects() -> None:
    import azureml.core as core
    from azureml.core.compute_target import ComputeTargetException
    from azureml.core.runconfig import RunConfiguration
    from azureml.exceptions import ActivityFailedException, UserErrorException

    assert core.__runlab_compat__ is True and core.VERSION.endswith(f"+runlab.{runlab.__version__}")
    assert core.Run is runlab.Run and core.Workspace is runlab.Workspace and core.Dataset is runlab.Dataset
    assert ComputeTargetException is runlab.ComputeTargetException and RunConfiguration is runlab.RunConfiguration
    assert issubclass(ActivityFailedException, runlab.RunFailedError) and UserErrorException is runlab.UserError


def test_light_import_in_a_training_script(v1_env: dict[str, str]) -> None:
    code = ("import sys; from azureml.core import Run; "
            "print(sorted(m for m in ('sqlalchemy', 'numpy', 'pandas', 'runlab.execution.targets') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], env=v1_env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]" and out.stderr == ""


def test_microsoft_azureml_core_beside_it_is_named(tmp_path: Path, v1_env: dict[str, str]) -> None:
    info = tmp_path / "fake-site" / "azureml_core-1.61.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: azureml-core\nVersion: 1.61.0\n")
    env = {**v1_env, "PYTHONPATH": v1_env["PYTHONPATH"] + os.pathsep + str(tmp_path / "fake-site")}
    done = subprocess.run([sys.executable, "-c", "import azureml.core"], env=env, capture_output=True, text=True)
    assert done.returncode == 0
    assert "AzuremlShadowWarning" in done.stderr and "azureml-core 1.61.0 is installed too" in done.stderr
    assert "runlab's is active here" in done.stderr


def test_pip_installs_the_package(tmp_path: Path, v1_env: dict[str, str]) -> None:
    target = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                           str(COMPAT_SRC.parent)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in (target / "azureml").iterdir()) == ["core", "data", "exceptions"]
    assert list(target.glob("azureml_core_runlab-0.1.0.dist-info"))
    env = {**v1_env, "PYTHONPATH": str(target) + os.pathsep + v1_env["PYTHONPATH"].split(os.pathsep, 1)[1]}
    out = subprocess.run([sys.executable, "-c", "import azureml.core as c; from azureml.data import FileDataset; "
                          "print(c.__file__)"], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(target / "azureml" / "core" / "__init__.py")


# The v1 import lines each tutorial script had before runlab's one-line change.
V1_IMPORTS = {
    "01-create-workspace.py": "from azureml.core import Workspace",
    "02-create-compute.py": "from azureml.core import Workspace\nfrom azureml.core.compute import ComputeTarget, "
                            "AmlCompute\nfrom azureml.core.compute_target import ComputeTargetException",
    "03-run-hello.py": "from azureml.core import Workspace, Experiment, ScriptRunConfig",
    "04-run-pytorch.py": "from azureml.core import Workspace, Experiment, Environment, ScriptRunConfig",
    "05-upload-data.py": "from azureml.core import Workspace",
    "06-run-pytorch-data.py": "from azureml.core import Workspace, Experiment, Environment, ScriptRunConfig, Dataset",
}


def _v1_tutorial(tmp_path: Path) -> Path:
    project = tmp_path / "tutorial"
    shutil.copytree(TUTORIAL, project, ignore=shutil.ignore_patterns("config.json", "__pycache__", "data"))
    for name, imports in V1_IMPORTS.items():
        script = project / name
        text, count = re.subn(r"^from runlab import [^\n]*$", imports, script.read_text(), count=1, flags=re.M)
        assert count == 1 and "runlab" not in text.split("\n", 3)[1], name
        script.write_text(text)
    return project


def _run(project: Path, env: dict[str, str], *argv: str) -> str:
    done = subprocess.run([sys.executable, *argv], cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{argv}: {done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done.stdout


def test_tutorial_scripts_with_v1_imports(tmp_path: Path, v1_env: dict[str, str]) -> None:
    project = _v1_tutorial(tmp_path)
    _run(project, v1_env, "01-create-workspace.py")
    config = json.loads((project / ".azureml" / "config.json").read_text())
    assert config["subscription_id"] == "<azure-subscription-id>" and config["resource_group"] == "rg-tutorial"
    _run(project, v1_env, "02-create-compute.py")
    assert "Hello world!" in _run(project, v1_env, "03-run-hello.py")
    _run(project, v1_env, "make_cifar10.py")
    assert "Uploaded 7 files" in _run(project, v1_env, "05-upload-data.py")

    # part 4's data step, with a small v1 training script instead of torch: the dataset mounted, Run in the run
    shutil.copy(V1_SCRIPTS / "src" / "count_files.py", project / "src" / "count_files.py")
    (project / "v1-data.py").write_text(
        "from azureml.core import Workspace, Experiment, ScriptRunConfig, Dataset\n"
        "ws = Workspace.from_config()\n"
        "dataset = Dataset.File.from_files(path=(ws.get_default_datastore(), 'datasets/cifar10'))\n"
        "config = ScriptRunConfig(source_directory='./src', script='count_files.py', compute_target='cpu-cluster',\n"
        "                         arguments=['--data_path', dataset.as_named_input('input').as_mount()])\n"
        "run = Experiment(workspace=ws, name='day1-experiment-data').submit(config)\n"
        "run.wait_for_completion(show_output=True)\n"
        "print('subscription', ws.subscription_id, 'files', run.get_metrics()['files'])\n")
    out = _run(project, v1_env, "v1-data.py")
    assert "files in the mounted dataset: 7 offline: False" in out
    assert "subscription <azure-subscription-id> files 7" in out


def _torch_wheel_available() -> bool:
    return any(Path("/opt/wheels").glob("torch-2.13.0*.whl")) or os.environ.get("RUNLAB_TEST_TORCH") == "1"


@pytest.mark.slow
@pytest.mark.skipif(not _torch_wheel_available(), reason="needs the local torch 2.13.0 CPU wheel (pip find-links)")
def test_tutorial_parts_3_and_4_with_v1_imports_train_with_torch(tmp_path: Path, v1_env: dict[str, str]) -> None:
    """04-run-pytorch.py and 06-run-pytorch-data.py with their v1 import lines, and src/train.py with its own
    (``from azureml.core import Run``): the pytorch-env environment is built (its ``azureml-sdk`` entry gets
    the compatibility package, not runlab's path), and both runs train and log their loss."""
    project = _v1_tutorial(tmp_path)
    train = project / "src" / "train.py"
    text, count = re.subn(r"^from runlab import Run\b[^\n]*$", "from azureml.core import Run", train.read_text(),
                          count=1, flags=re.M)
    assert count == 1 and "runlab" not in text
    train.write_text(text)
    env = {**v1_env, "RUNLAB_TEST_TORCH": "1"}
    for script in ("01-create-workspace.py", "02-create-compute.py", "make_cifar10.py", "05-upload-data.py"):
        _run(project, env, script)
    assert "Finished Training" in _run(project, env, "04-run-pytorch.py")
    assert "Finished Training" in _run(project, env, "06-run-pytorch-data.py")
    ws = runlab.Workspace.from_config(project)
    for name in ("day1-experiment-train", "day1-experiment-data"):
        (run,) = runlab.Experiment(ws, name).get_runs()
        assert run.get_status() == "Completed"
        loss = run.get_metrics()["loss"]
        assert len(loss) >= 5 and loss[-1] < loss[0], (name, loss)
        with run.open_file("azureml-logs/20_image_build_log.txt") as f:
            assert "azureml-sdk" in f.read().decode()
    (data_run,) = runlab.Experiment(ws, "day1-experiment-data").get_runs()
    (consumed,) = data_run.get_details()["inputDatasets"]
    assert consumed["consumptionDetails"]["mechanism"] == "Mount"


def test_control_script_using_more_of_the_v1_api(tmp_path: Path, v1_env: dict[str, str]) -> None:
    project = _v1_tutorial(tmp_path)
    _run(project, v1_env, "01-create-workspace.py")
    _run(project, v1_env, "02-create-compute.py")
    for script in ("train_v1.py", "fail_v1.py"):
        shutil.copy(V1_SCRIPTS / "src" / script, project / "src" / script)
    shutil.copy(V1_SCRIPTS / "control_v1.py", project / "control_v1.py")
    out = _run(project, v1_env, "control_v1.py")
    result = json.loads(out.split("V1-RESULT ", 1)[1])
    assert result["subscription_id"] == "<azure-subscription-id>"
    assert result["status"] == "Completed"
    metrics = result["metrics"]
    assert metrics["greeting_length"] == 5 and metrics["table_rows"] == 3  # run_config.environment_variables
    assert metrics["accuracies"] == [0.8, 0.85, 0.9] and metrics["per class"] == {"cls": ["cat", "dog"],
                                                                                   "acc": [0.9, 0.7]}
    assert metrics["roc"] == {"fpr": [0, 0.5, 1], "tpr": [0, 0.8, 1]}
    assert result["tags"]["greeting"] == "hallo" and result["same_run"] and len(result["listed"]) == 1
    assert result["models"] == ["v1-model"] and result["docker"]["useDocker"] is True
    assert result["raised"] == "ActivityFailedException"
    assert result["error_message"].startswith("the script exited with code 3")
    assert len(result["driver_log"]) == 1 and "about to fail" in result["driver_log"][0]
    assert result["minimal"] == "AzureML-Minimal"
    assert "- six" in result["conda_file"] and "- attrs" in result["conda_file"] and "python=3.11" in result["conda_file"]
    assert "Webservice(workspace, name='my-service'): runlab does not deploy" in result["webservice"]


def test_run_configuration_defaults_and_conda_dependencies(ws: runlab.Workspace) -> None:
    from runlab.execution.environments import EnvironmentDefinition
    from runlab.sdk.submit import _is_untouched_default

    rc = runlab.RunConfiguration()
    assert rc.environment is not None and _is_untouched_default(rc.environment.definition())
    rc.environment.environment_variables["A"] = "b"
    assert _is_untouched_default(rc.environment.definition())  # variables alone build nothing
    cd = runlab.CondaDependencies.create(pip_packages=["six"])
    rc.environment.python.conda_dependencies = cd
    assert not _is_untouched_default(rc.environment.definition())
    with_cd = runlab.RunConfiguration(conda_dependencies=cd)
    assert with_cd.environment is not None and with_cd.environment.definition().pip_requirements == ("six",)
    # an Azure SDK package asks for the compatibility package in the built environment
    norm = EnvironmentDefinition("e", pip_requirements=("azureml-defaults", "six")).normalized()
    assert norm.azureml_compat and norm.pip_requirements == ("six",)
    assert EnvironmentDefinition.from_dict(norm.to_dict()) == norm
    plain = EnvironmentDefinition("e", pip_requirements=("six",)).normalized()
    assert "azureml_compat" not in plain.hash_payload() and norm.content_hash() != plain.content_hash()
    assert runlab.Environment.get(ws, "AzureML-sklearn-1.0-ubuntu20.04-py38-cpu").definition().pip_requirements[0] \
        == "scikit-learn"
    with pytest.raises(runlab.NotFoundError):
        runlab.Environment.get(ws, "my-own-env")


@pytest.mark.slow
def test_built_environment_asking_for_the_sdk_gets_the_package(tmp_path: Path, v1_env: dict[str, str]) -> None:
    """A conda spec with ``pip: [azureml-defaults]``: the built environment imports azureml.core (linked, not
    from PYTHONPATH, which the run does not get here)."""
    project = _v1_tutorial(tmp_path)
    _run(project, v1_env, "01-create-workspace.py")
    (project / "env.yml").write_text("dependencies:\n  - python=3.6.2\n  - pip\n  - pip:\n    - azureml-defaults\n")
    (project / "src" / "where.py").write_text(
        "import azureml.core, os\nfrom azureml.core import Run\n"
        "Run.get_context().log('ok', 1)\nprint('azureml.core from', azureml.core.__file__, os.environ.get('PYTHONPATH'))\n")
    (project / "submit_env.py").write_text(
        "import os\n"
        "from azureml.core import Workspace, Experiment, Environment, ScriptRunConfig\n"
        "ws = Workspace.from_config()\n"
        "config = ScriptRunConfig(source_directory='./src', script='where.py')\n"
        "config.run_config.environment = Environment.from_conda_specification('sdk-env', 'env.yml')\n"
        "config.run_config.environment_variables['PYTHONPATH'] = ''\n"
        "run = Experiment(ws, 'sdk-env').submit(config)\n"
        "run.wait_for_completion(show_output=True)\n")
    out = _run(project, v1_env, "submit_env.py")
    assert f"azureml.core from {COMPAT_SRC / 'azureml' / 'core' / '__init__.py'}" in out


def test_control_script_with_v1_run_experiment_and_workspace_calls(tmp_path: Path, v1_env: dict[str, str]) -> None:
    """tests/compat/v1_scripts/control_more_v1.py, unchanged: display names, child runs, secrets, snapshots,
    logs, archiving, saved environments, private wheels, and Azure-only datastores refused by name."""
    project = _v1_tutorial(tmp_path)
    _run(project, v1_env, "01-create-workspace.py")
    _run(project, v1_env, "02-create-compute.py")
    shutil.copy(V1_SCRIPTS / "src" / "train_more_v1.py", project / "src" / "train_more_v1.py")
    shutil.copy(V1_SCRIPTS / "control_more_v1.py", project / "control_more_v1.py")
    offline = subprocess.run([sys.executable, "src/train_more_v1.py"], cwd=project, env=v1_env, capture_output=True,
                             text=True, timeout=120)
    assert offline.returncode == 0 and "offline: nothing to do" in offline.stdout, offline.stderr
    result = json.loads(_run(project, v1_env, "control_more_v1.py").split("V1-RESULT ", 1)[1])
    assert result["status"] == "Completed", result
    assert result["display_name"] == "sweep-parent" and result["renamed"] == "renamed"
    children = {k: v for k, v in result["metrics"].items() if isinstance(v, dict)}
    assert sorted(m["loss"] for m in children.values()) == [0.02, 0.2] and result["metrics"]["api_key_length"] == 6
    assert result["children"] == ["0.01", "0.1"]
    assert result["submitted_by"] and result["output_datasets"] == [] and result["warnings"] == []
    assert result["docker"]["enabled"] is True
    assert result["docker"]["baseImage"] == "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04"
    assert result["user_managed"] is True and "dependencies" in result["conda"]
    assert result["environment"] == ["Environment", "v1-image-env",
                                     "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04"]
    assert "azureml-logs/70_driver_log.txt" in result["logs"] and "logs/notes.txt" in result["logs"]
    assert result["snapshot_zip"][0] is True and "train_more_v1.py" in result["snapshot_zip"][1]
    assert isinstance(result["clean"], list) and result["downloaded"] == ["notes.txt"]
    assert result["active"] == [] and result["archived"] == ["v1-more"]
    assert result["tags"] == {"project": "cifar", "owner": "me"} and result["wheel_kept"] is True
    assert result["blob"].startswith("NotSupportedError: Datastore.register_azure_blob_container(container_name=")
    assert "register_local" in result["blob"] and "register_s3" in result["blob"]
    assert result["mlflow_uri"].startswith("file://") and result["models"] == []
