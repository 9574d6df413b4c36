"""`socialcare label`: open the reviewers' labelling notebook in JupyterLab."""

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from socialcare.core import paths
from socialcare.core.options import option

LABEL_NOTEBOOK = paths.REPO_ROOT / "notebooks" / "label_posts.ipynb"


@dataclass
class LabelOptions:
    """Start JupyterLab on the labelling notebook (notebooks/label_posts.ipynb) and open it
    in the browser. Run all cells, enter your name, press Load posts. Stops with Ctrl-C.
    """

    port: int = option(8888, help="port to listen on (the next free one if taken)")
    host: str = option("127.0.0.1", help="address to bind; 0.0.0.0 to accept other machines")
    browser: bool = option(True, help="open a browser tab (--no-browser: print the URL only)")
    notebook: Path = option(LABEL_NOTEBOOK, help="the notebook to open")


def jupyter_command(opts: LabelOptions) -> list[str]:
    """The JupyterLab command line for these options, served from the notebook's folder (the
    reviewers' notebooks), so it works from any working directory."""
    notebook = Path(opts.notebook).resolve()
    command = [
        sys.executable, "-m", "jupyterlab",
        f"--ServerApp.root_dir={notebook.parent}",
        # The URL it opens and prints goes to the notebook itself, not the file browser.
        f"--LabApp.default_url=/lab/tree/{notebook.name}",
        f"--ServerApp.ip={opts.host}", f"--ServerApp.port={opts.port}",
    ]  # fmt: skip
    if not opts.browser:
        command.append("--no-browser")
    if os.geteuid() == 0:
        # Containers and CI run as root; Jupyter refuses that unless told, though a server
        # on 127.0.0.1 (the default) is no more exposed than any other user's.
        command.append("--allow-root")
    return command


def run_label(opts: LabelOptions) -> int:
    if not Path(opts.notebook).is_file():
        raise FileNotFoundError(f"{opts.notebook}: no such notebook")
    try:
        import jupyterlab  # noqa: F401  (a clear message beats `No module named jupyterlab`)
    except ImportError:
        raise LookupError(
            "JupyterLab is not installed: .venv/bin/pip install -e '.[notebooks]'"
        ) from None
    sys.stdout.flush()
    # Become the JupyterLab server, so that Ctrl-C reaches it (and its kernels) directly.
    os.execv(sys.executable, jupyter_command(opts))
