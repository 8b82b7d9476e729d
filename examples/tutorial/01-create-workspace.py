# tutorial/01-create-workspace.py
from runlab import Workspace  # was: from azureml.core import Workspace

ws = Workspace.create(name='tutorial-ws',            # the only required argument on runlab
                      subscription_id='<azure-subscription-id>',
                      resource_group='rg-tutorial',
                      create_resource_group=True,
                      location='westeurope',
                      exist_ok=True)

# write out the workspace details to a configuration file: .azureml/config.json
ws.write_config(path='.azureml')
