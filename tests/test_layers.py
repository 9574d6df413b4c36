"""The house's layers hold: the import contracts in pyproject.toml, and a core that runs
without the model, service and widget libraries installed."""

import pkgutil
import subprocess
import sys
from pathlib import Path

import socialcare.core
from socialcare.core import paths

HEAVY = ("torch", "transformers", "bentoml", "onnxruntime", "ipywidgets")
# Run first in the subprocess: imports of HEAVY fail as they would if not installed.
BLOCKER = f"""
import importlib, sys

class Missing:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {HEAVY!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Missing())
"""


def test_import_contracts_hold():
    """import-linter's layers contract: cli > review > training | serving > runtime > core."""
    result = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=paths.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


def test_core_modules_import_without_torch_bentoml_or_widgets():
    """Each core module imports in a fresh interpreter where the heavy libraries cannot be
    found (an import hook answers as if they were not installed)."""
    modules = [
        f"socialcare.core.{info.name}" for info in pkgutil.iter_modules(socialcare.core.__path__)
    ]
    assert {"socialcare.core.schema", "socialcare.core.records", "socialcare.core.arrays"} <= set(
        modules
    )
    script = "\n".join(
        [
            BLOCKER,
            f"for name in {modules!r}:",
            "    importlib.import_module(name)",
            f"loaded = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})",
            "print('loaded:', loaded)",
        ]
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=paths.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "loaded: []" in result.stdout


def test_the_blocking_itself_works():
    """The check above would pass vacuously if blocking did not make imports fail."""
    script = BLOCKER + "\nimport socialcare.runtime.model"
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=paths.REPO_ROOT, capture_output=True, text=True
    )
    assert result.returncode != 0 and "torch" in result.stderr
