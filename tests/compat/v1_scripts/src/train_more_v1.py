# a training script with v1's offline-run check, secrets and child runs
from azureml.core import Run

run = Run.get_context()
if run.id.startswith("OfflineRun"):  # how v1 scripts tell a local try from a submitted run
    print("offline: nothing to do")
else:
    run.display_name = "sweep-parent"
    run.log("api_key_length", len(run.get_secret("api-key")))
    for child, lr in zip(run.create_children(tag_key="lr", tag_values=["0.1", "0.01"]), [0.1, 0.01]):
        child.log("loss", lr * 2)
        child.complete()
    with open("logs/notes.txt", "w") as f:
        f.write("trained\n")
    print("submitted run", run.id)
