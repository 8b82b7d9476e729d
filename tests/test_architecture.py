"""The layers of shared/DESIGN.md, the public API, and the schema's migrations."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

import runlab

PACKAGE = Path(runlab.__file__).parent
LAYERS = ["core", "store", "tracking", "execution", "sdk", "server", "cli"]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n for n in names if n.startswith("runlab.")}


def test_layers_import_only_downward() -> None:
    violations = []
    for layer_index, layer in enumerate(LAYERS):
        for path in (PACKAGE / layer).rglob("*.py"):
            for name in _imports(path):
                target = name.split(".")[1]
                if target in LAYERS and LAYERS.index(target) > layer_index:
                    violations.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert violations == []


def test_public_api_is_pinned() -> None:
    assert runlab.__all__ == sorted(runlab.__all__[:-1]) + ["__version__"]
    for name in runlab.__all__:
        assert getattr(runlab, name) is not None
    assert {"Workspace", "Experiment", "Run", "RunStatus", "ComputeTargetException"} <= set(runlab.__all__)


def test_import_runlab_is_light() -> None:
    code = ("import sys, runlab; print(sorted(m for m in ('sqlalchemy', 'numpy', 'alembic', 'rich', 'click', "
            "'pyarrow', 'pandas', 'boto3') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_get_context_in_a_training_script_stays_light(tmp_path: Path) -> None:
    """A training script's first lines: no store, no numpy, no agent code until something is written."""
    code = (
        "import sys, runlab; run = runlab.Run.get_context(); run.log('loss', 0.5); "
        "print(sorted(m for m in ('sqlalchemy', 'numpy', 'alembic', 'rich', 'click', 'runlab.execution.targets') "
        "if m in sys.modules))"
    )
    env = {**os.environ, "RUNLAB_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.strip() == "[]"


def test_schema_revision_is_the_newest_migration(tmp_path: Path) -> None:
    from alembic.script import ScriptDirectory

    from runlab.store.sql.migrate import MIGRATIONS_DIR, alembic_config
    from runlab.store.sql.schema import SCHEMA_REVISION

    script = ScriptDirectory.from_config(alembic_config())  # type: ignore[arg-type]
    assert script.get_current_head() == SCHEMA_REVISION
    assert (MIGRATIONS_DIR / "versions").is_dir()


def test_migrations_match_the_tables(tmp_path: Path) -> None:
    """Upgrading an empty database gives exactly the tables schema.py declares."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from runlab.store.sql.migrate import upgrade
    from runlab.store.sql.schema import metadata

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert diff == []
