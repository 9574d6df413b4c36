"""The prediction service's settings: one typed model, read once at start-up.

BentoML passes them as arguments: `bentoml serve serving.service:SocialCare --arg
model=TAG --arg review_queue=/data/queue.sqlite` (what `socialcare serve` runs), or
`bentoml build --arg ...` and bentofile.yaml's ``args``, which a built Bento keeps.
Every default is defined once, in socialcare.core (paths, limits).
"""

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from socialcare.core import paths
from socialcare.core.limits import MAX_BODY_BYTES, MAX_POSTS, MAX_TEXT_CHARS


class ServiceSettings(BaseModel):
    """What `socialcare serve`'s options and BentoML's `--arg name=value` set."""

    # Frozen: settings do not change while the service runs. A misspelt name fails the
    # start-up instead of being ignored.
    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str | None = Field(
        None,
        description="production, latest or a registered tag "
        "(default: the production model, else the newest)",
    )
    policy: Path = Field(paths.POLICY_FILE, description="response policy YAML file")
    review_queue: Path = Field(
        paths.REVIEW_QUEUE, description="SQLite file where posts that need review are queued"
    )
    max_posts: int = Field(MAX_POSTS, ge=1, description="most posts accepted in one request")
    max_text_chars: int = Field(
        MAX_TEXT_CHARS, ge=1, description="longest post text accepted, in characters"
    )
    max_body_bytes: int = Field(
        MAX_BODY_BYTES,
        ge=1024,
        description="largest request body read, in bytes after decompression (413 above it)",
    )

    def served_model(self) -> str:
        """The registered tag ``model`` names (socialcare.runtime.resolver); ValueError for a
        model directory, which the service cannot serve: a Bento carries registered models."""
        from socialcare.runtime.resolver import resolve_model

        ref = resolve_model(self.model)
        if Path(ref.tag) == ref.directory:
            raise ValueError(
                f"{ref.directory}: the service serves registered models; give its tag "
                "(`socialcare models` lists them)"
            )
        return ref.tag

    def bento_args(self) -> list[str]:
        """These settings as `bentoml serve` options: ``--arg name=value`` each (unset ones
        left out, so the service applies its default)."""
        return [
            option
            for name, value in self.model_dump(exclude_none=True).items()
            for option in ("--arg", f"{name}={value}")
        ]
