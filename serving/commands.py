"""`socialcare serve`: start the prediction service on this machine."""

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from socialcare.core import paths
from socialcare.core.options import option


@dataclass
class ServeOptions:
    """Start the prediction service (BentoML) with a registered model and the response policy.

    POST /predict classifies posts; /livez, /readyz, /metrics and the API docs at /.
    Stops with Ctrl-C.
    """

    port: int = option(3000, help="port to listen on")
    host: str = option("127.0.0.1", help="address to bind; 0.0.0.0 to accept other machines")
    model: str | None = option(
        None, help="registered model tag (default: the production model, else the newest)"
    )
    policy: Path = option(paths.POLICY_FILE, help="response policy YAML file")
    review_queue: Path = option(
        paths.REVIEW_QUEUE, help="SQLite file where posts that need review are queued"
    )
    max_posts: int = option(256, help="most posts accepted in one request")
    max_text_chars: int = option(5000, help="longest post text accepted, in characters")


def service_environment(opts: ServeOptions) -> dict[str, str]:
    """The environment that configures serving/service.py (see its docstring)."""
    if opts.max_posts < 1 or opts.max_text_chars < 1:
        raise ValueError("--max-posts and --max-text-chars must be at least 1")
    env = {
        "SOCIALCARE_POLICY": str(Path(opts.policy).resolve()),
        "SOCIALCARE_REVIEW_QUEUE": str(Path(opts.review_queue).resolve()),
        "SOCIALCARE_MAX_POSTS": str(opts.max_posts),
        "SOCIALCARE_MAX_TEXT_CHARS": str(opts.max_text_chars),
    }
    return env


def run_serve(opts: ServeOptions) -> int:
    from serving.policy import load_policy
    from socialcare.runtime.resolver import resolve_model

    # Check what can be checked here, so mistakes read as one line, not a server log.
    tag = resolve_model(opts.model).tag
    policy = load_policy(opts.policy)
    print(f"serving {tag} with policy {policy.version} on http://{opts.host}:{opts.port}")
    command = [
        sys.executable, "-m", "bentoml", "serve", "serving.service:SocialCare",
        "--working-dir", str(paths.REPO_ROOT), "--host", opts.host, "--port", str(opts.port),
        "--arg", f"model={tag}",
    ]  # fmt: skip
    env = {**os.environ, **service_environment(opts)}
    sys.stdout.flush()
    # Become the BentoML server, so that signals (Ctrl-C, a supervisor's SIGTERM) reach it
    # and its workers directly instead of orphaning them.
    os.execve(sys.executable, command, env)
