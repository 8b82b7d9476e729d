# a training script using more of the v1 Run API
import os

from azureml.core import Run

run = Run.get_context()
run.log("greeting_length", len(os.environ["GREETING"]))
run.tag("greeting", os.environ["GREETING"])
run.log_list("accuracies", [0.8, 0.85, 0.9])
run.log_row("per class", cls="cat", acc=0.9)
run.log_row("per class", cls="dog", acc=0.7)
run.log_table("roc", {"fpr": [0, 0.5, 1], "tpr": [0, 0.8, 1]})
table = run.input_datasets["table"].to_pandas_dataframe()
run.log("table_rows", len(table))
os.makedirs("outputs", exist_ok=True)
with open("outputs/model.txt", "w") as f:
    f.write("weights")
model = run.register_model(model_name="v1-model", model_path="outputs/model.txt", tags={"kind": "test"})
print("registered", model.name, model.version)
