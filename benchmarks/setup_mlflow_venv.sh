#!/usr/bin/env bash
# Create (or re-create) MLflow's own venv for bench_tracking.py: benchmarks/.venv-mlflow.
# bench_tracking.py does the same on first run; use this to prepare it ahead of time.
#   bash benchmarks/setup_mlflow_venv.sh [PYTHON]      (default: python3.11, else python3)
# mlflow-skinny + SQLAlchemy + Alembic is enough for MLflow's SQLite backend store.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv-mlflow"
python="${1:-$(command -v python3.11 || command -v python3)}"
"$python" -m venv --clear "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check mlflow-skinny sqlalchemy alembic
"$venv/bin/python" -c "import mlflow, sqlalchemy, alembic; print('mlflow', mlflow.__version__, 'in', '$venv')"
