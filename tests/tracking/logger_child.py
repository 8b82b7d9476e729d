"""A training loop for the reliability tests: logs 0, 1, 2, ... and publishes how many it logged.

argv: workspace (a folder, or a config.json, which may name a server) mode count counter_file
mode: kill (log forever), exit (log count, exit 0), raise (log count, raise), offline
The counter file holds the number of points logged so far (8 bytes, written after each log).
"""

import mmap
import os
import struct
import sys
import time

import runlab

ws_path, mode, count, counter_path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
with open(counter_path, "wb") as f:
    f.write(b"\0" * 8)
fd = os.open(counter_path, os.O_RDWR)
counter = mmap.mmap(fd, 8)

if mode == "offline":
    run = runlab.Run.get_context()
else:
    ws = runlab.Workspace.from_config(ws_path) if ws_path.endswith(".json") else runlab.Workspace.from_path(ws_path)
    run = runlab.Experiment(ws, "reliability").start_logging()
print(run.id, flush=True)

i = 0
while mode == "kill" or mode == "term" or i < count:
    run.log("x", float(i))
    i += 1
    counter[:8] = struct.pack("<q", i)
    if i % 100 == 0:
        time.sleep(0.001)  # a training step

if mode == "raise":
    raise RuntimeError("boom in training")
