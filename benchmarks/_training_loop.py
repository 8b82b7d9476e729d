"""The tutorial's training loop (examples/tutorial/src/train.py: its Net, SGD with momentum, batch
size 4) in blocks of mini-batches, alternately with ``run.log('loss', ...)`` after every mini-batch and
without it; run by bench_training.py with the PyTorch environment's interpreter.

Prints one JSON line: the wall and CPU seconds of every block, in order, with its kind.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.optim as optim

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "tutorial" / "src"))
from model import Net  # noqa: E402

from runlab import Run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--batches", type=int, default=250, help="mini-batches per block")
    args = parser.parse_args()
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    n = args.batches * 4
    labels = torch.randint(0, 10, (n,), generator=g)
    images = torch.rand(10, 3, 32, 32, generator=g)[labels] + 0.25 * torch.randn(n, 3, 32, 32, generator=g)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels), batch_size=4, shuffle=True)
    net = Net()
    criterion = torch.nn.CrossEntropyLoss()
    optimizer = optim.SGD(net.parameters(), lr=0.003, momentum=0.9)
    run = Run.get_context()  # an offline run: the same log() path (buffer, background writer) as a submitted one

    def block(log: bool) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        running_loss = 0.0
        for inputs, target in loader:
            optimizer.zero_grad()
            loss = criterion(net(inputs), target)
            loss.backward()
            optimizer.step()
            value = loss.item()
            running_loss += value
            if log:
                run.log("loss", value)
        return time.perf_counter() - wall, time.process_time() - cpu

    block(True)  # warm-up: first allocations, the logger's thread started
    block(False)
    blocks = []
    for i in range(args.pairs):
        for log in ((True, False) if i % 2 == 0 else (False, True)):  # neither side always first
            wall, cpu = block(log)
            blocks.append({"log": log, "wall": wall, "cpu": cpu})
    calls = 20_000  # run.log alone, in a tight loop: its cost per call, which noise between blocks hides
    run.flush()
    started = time.perf_counter()
    for _ in range(calls):
        run.log("cost", 0.5)
    per_call = (time.perf_counter() - started) / calls
    # ...and the whole cost of a point: the call, then the background writer's batching and its write
    # into the store, until every point is stored (flush): the process's CPU time over all its threads
    run.flush()
    whole_wall, whole_cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        run.log("whole", 0.5)
    run.flush()
    whole_wall = (time.perf_counter() - whole_wall) / calls
    whole_cpu = (time.process_time() - whole_cpu) / calls
    run.complete()
    print(json.dumps({"threads": torch.get_num_threads(), "batches": args.batches, "blocks": blocks,
                      "log_call_s": per_call, "log_stored_wall_s": whole_wall, "log_stored_cpu_s": whole_cpu}))


if __name__ == "__main__":
    main()
