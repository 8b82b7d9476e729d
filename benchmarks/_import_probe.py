"""Import-cost probe, run as a fresh process by bench_tracking.py (figure 4).

``python _import_probe.py runlab`` times ``import runlab; runlab.Run.get_context()``;
``python _import_probe.py mlflow`` times ``import mlflow; mlflow.start_run()``;
``python _import_probe.py none`` times nothing (the interpreter's own start-up floor).

Only ``sys`` and ``time`` are imported before the clock starts, so nothing the measured
library needs is preloaded. Prints one line ``@@RESULT@@ {json}``.
"""

import sys
import time

t0 = time.perf_counter()
which = sys.argv[1] if len(sys.argv) > 1 else "none"
run_id = ""
if which == "runlab":
    import runlab

    run_id = runlab.Run.get_context().id
elif which == "mlflow":
    import mlflow

    run_id = mlflow.start_run().info.run_id
t1 = time.perf_counter()

heavy = [m for m in ("sqlalchemy", "alembic", "numpy", "pandas", "requests", "google.protobuf") if m in sys.modules]
sys.stdout.write(
    '@@RESULT@@ {"inside_s": %r, "run_id": "%s", "modules_loaded": %d, "heavy_modules": [%s]}\n'
    % (t1 - t0, run_id, len(sys.modules), ", ".join('"%s"' % m for m in heavy))
)
sys.stdout.flush()
