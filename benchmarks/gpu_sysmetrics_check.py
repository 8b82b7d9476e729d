"""On a machine with an NVIDIA GPU: does a submitted run get its sys/gpu<i>/... series?

    python benchmarks/gpu_sysmetrics_check.py              # about 15 s
    python benchmarks/gpu_sysmetrics_check.py --seconds 20 --interval 1

1. Opens NVML as the agent does (``GpuReader.open``) and prints what it sees and one reading.
2. Submits a run (a fresh workspace in a temp folder, system metrics every ``--interval`` s) whose
   script keeps the GPU busy with matrix products when torch with CUDA is importable in this
   Python, or else only sleeps (the GPU series are then idle readings), for ``--seconds``.
3. Prints every sys/gpu* series of the run: points, min, max, last; and the agent's log line.

Exit code: 0 when every GPU NVML lists has its four series in the run; 1 when some are missing;
2 when this machine has no GPU that NVML can read (nothing to check).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent("""
    import sys, time
    seconds = float(sys.argv[1])
    end = time.time() + seconds
    try:
        import torch
        cuda = torch.cuda.is_available()
    except ImportError:
        cuda = False
    print("GPU work with torch" if cuda else "no torch with CUDA: sleeping", flush=True)
    if cuda:
        a = torch.randn(4096, 4096, device="cuda")
        while time.time() < end:
            a = (a @ a).clamp_(-1, 1)
            torch.cuda.synchronize()
    else:
        time.sleep(seconds)
""")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="how long the run's script runs")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between samples")
    args = parser.parse_args()

    from runlab.tracking.sysmetrics import GpuReader

    reader, note = GpuReader.open()
    print(f"NVML: {note}")
    if reader is None:
        print("nothing to check on this machine")
        return 2
    gpus = reader.count
    print(f"one reading: {reader.read()}")
    reader.close()

    with tempfile.TemporaryDirectory(prefix="gpu-sysmetrics-") as tmp:
        root = Path(tmp)
        os.environ["RUNLAB_HOME"] = str(root / "home")
        os.environ["RUNLAB_SYSTEM_METRICS_INTERVAL"] = str(args.interval)  # the agent reads it when it starts
        import runlab
        from runlab import AmlCompute, ComputeTarget, ScriptRunConfig

        ws = runlab.Workspace.create("gpu-check", path=root / "ws")
        ComputeTarget.create(ws, "gpu-cluster", AmlCompute.provisioning_configuration(
            max_nodes=1, idle_seconds_before_scaledown=5))
        src = root / "src"
        src.mkdir()
        (src / "gpu.py").write_text(SCRIPT)
        run = runlab.Experiment(ws, "gpu-check").submit(
            ScriptRunConfig(str(src), "gpu.py", arguments=[str(args.seconds)], compute_target="gpu-cluster"))
        run.wait_for_completion(show_output=True)
        with run.open_file("azureml-logs/55_agent_log.txt") as f:
            print("agent:", next((line for line in f.read().decode().splitlines() if "system metrics" in line),
                                 "(no system metrics line)"))
        missing = []
        print(f"\n{'series':<36} {'points':>6} {'min':>10} {'max':>10} {'last':>10}")
        summaries = {s.name: s for s in run.get_metric_summaries()}
        for i in range(gpus):
            for field in GpuReader.FIELDS:
                name = f"sys/gpu{i}/{field}"
                s = summaries.get(name)
                if s is None:
                    missing.append(name)
                    print(f"{name:<36} {'—':>6}")
                else:
                    print(f"{name:<36} {s.count:>6} {s.min:>10.1f} {s.max:>10.1f} {s.last:>10.1f}")
        cpu = summaries.get("sys/cpu_percent")
        print(f"{'sys/cpu_percent':<36} {cpu.count if cpu else 0:>6}")
    if missing:
        print(f"\nMISSING: {', '.join(missing)} (NVML lists {gpus} GPU(s))")
        return 1
    print(f"\nOK: all {gpus * len(GpuReader.FIELDS)} GPU series of {gpus} GPU(s) are in the run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
