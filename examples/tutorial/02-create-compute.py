# tutorial/02-create-compute.py
from runlab import Workspace, ComputeTarget, AmlCompute, ComputeTargetException  # was: azureml.core...

ws = Workspace.from_config()  # this automatically looks for a directory .azureml

# choose a name for your CPU cluster
cpu_cluster_name = 'cpu-cluster'

# verify that cluster does not exist already
try:
    cpu_cluster = ComputeTarget(workspace=ws, name=cpu_cluster_name)
    print('Found existing cluster, use it.')
except ComputeTargetException:
    compute_config = AmlCompute.provisioning_configuration(vm_size='STANDARD_D2_V2',
                                                           idle_seconds_before_scaledown=2400,
                                                           min_nodes=0,
                                                           max_nodes=4)
    cpu_cluster = ComputeTarget.create(ws, cpu_cluster_name, compute_config)

cpu_cluster.wait_for_completion(show_output=True)
