# a training script as written for Azure ML v1: the mounted dataset's folder comes through argv
import argparse
import os

from azureml.core import Run

run = Run.get_context()
parser = argparse.ArgumentParser()
parser.add_argument("--data_path")
args = parser.parse_args()
count = sum(len(files) for _, _, files in os.walk(args.data_path))
run.log("files", count)
print("files in the mounted dataset:", count, "offline:", run.id.startswith("OfflineRun"))
