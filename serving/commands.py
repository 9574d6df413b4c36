"""`socialcare serve`: start the prediction service on this machine."""

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from serving.settings import ServiceSettings
from socialcare.core import paths
from socialcare.core.errors import describe_errors
from socialcare.core.options import option


def _setting(name: str) -> Any:
    """The option for one service setting: its default and help are the setting's own, so
    `socialcare serve` and `bentoml serve --arg` cannot drift apart."""
    field = ServiceSettings.model_fields[name]
    return option(field.default, help=field.description)


@dataclass
class ServeOptions:
    """Start the prediction service (BentoML) with a registered model and the response policy.

    POST /predict classifies posts; /livez, /readyz, /metrics and the API docs at /.
    Stops with Ctrl-C.
    """

    port: int = option(3000, help="port to listen on")
    host: str = option("127.0.0.1", help="address to bind; 0.0.0.0 to accept other machines")
    model: str | None = _setting("model")
    policy: Path = _setting("policy")
    review_queue: Path = _setting("review_queue")
    max_posts: int = _setting("max_posts")
    max_text_chars: int = _setting("max_text_chars")
    max_body_bytes: int = _setting("max_body_bytes")


def service_settings(opts: ServeOptions) -> ServiceSettings:
    """The service's settings from the options; paths made absolute, since the server runs
    from the repository root. ValueError names the option at fault."""
    try:
        return ServiceSettings(
            model=opts.model,
            policy=Path(opts.policy).resolve(),
            review_queue=Path(opts.review_queue).resolve(),
            max_posts=opts.max_posts,
            max_text_chars=opts.max_text_chars,
            max_body_bytes=opts.max_body_bytes,
        )
    except ValidationError as err:
        problems = describe_errors(err, "options")
        raise ValueError(
            "; ".join(f"--{field.replace('_', '-')}: {message}" for field, message in problems)
        ) from None


def run_serve(opts: ServeOptions) -> int:
    from serving.policy import frozen_copy, load_policy
    from socialcare.runtime.resolver import model_info

    # Check what can be checked here, so mistakes read as one line, not a server log.
    settings = service_settings(opts)
    # The tag, not "production": the service keeps serving this model if another is promoted.
    settings = settings.model_copy(update={"model": settings.served_model()})
    policy = load_policy(settings.policy)
    # The service reads a copy of the policy just checked: a worker that BentoML restarts
    # then serves the same policy, whatever happened to the file since.
    settings = settings.model_copy(update={"policy": frozen_copy(settings.policy)})
    band = policy.band_for(model_info(settings.model).get("review_calibration"))
    how = (
        f"to flag {policy.review_rate:.0%} of the model's validation posts"
        if policy.review_rate is not None and band != policy.review_band
        else "as set in the policy"
    )
    print(
        f"serving {settings.model} with policy {policy.version} on http://{opts.host}:{opts.port}"
        f"; review band {band:.3f} ({how})"
    )
    command = [
        sys.executable, "-m", "bentoml", "serve", "serving.service:SocialCare",
        "--working-dir", str(paths.REPO_ROOT), "--host", opts.host, "--port", str(opts.port),
        *settings.bento_args(),
    ]  # fmt: skip
    sys.stdout.flush()
    # Become the BentoML server, so that signals (Ctrl-C, a supervisor's SIGTERM) reach it
    # and its workers directly instead of orphaning them.
    os.execv(sys.executable, command)
