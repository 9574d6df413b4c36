"""The insurer's response policy: which action each classified post gets.

The rules live in an editable YAML file (``serving/policy.yaml``); this module reads and
checks it (``load_policy``) and applies it (``Policy.decide``). The logic is driven by
the file's tables: intent names, actions, priorities and due times all come from it,
so a social-media lead can change the rules without touching code.
"""

import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from socialcare.core.clock import as_utc
from socialcare.core.errors import describe_errors
from socialcare.core.labels import INTENTS, Intent, Sentiment
from socialcare.core.paths import POLICY_FILE, VAR_DIR
from socialcare.core.schema import NonBlank

# Strongest first: when a post has several intents, the strongest action and the
# highest priority win.
ActionType = Literal["respond", "respond_if_time", "like", "watch", "none"]
Priority = Literal["high", "medium", "low"]
Route = Literal["social_team", "customer_care"]

# Weakest first, so that max() over the index picks the strongest.
ACTION_STRENGTH: tuple[str, ...] = tuple(reversed(get_args(ActionType)))
PRIORITY_RANK: tuple[str, ...] = tuple(reversed(get_args(Priority)))
# Actions that answer the post, and so can be handed to customer care.
RESPOND_TYPES = frozenset({"respond", "respond_if_time"})

_DURATION = re.compile(r"(?:(?P<d>\d+)\s*d)?\s*(?:(?P<h>\d+)\s*h)?\s*(?:(?P<m>\d+)\s*m(?:in)?)?")


class PolicyError(ValueError):
    """A policy file that cannot be used; the message lists every problem, one a line."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid response policy:\n" + "\n".join(problems))


def parse_due(value: Any) -> timedelta:
    """Minutes as a number (``60``) or a duration (``45m``, ``4h``, ``1d``, ``1h30m``)."""
    if isinstance(value, bool) or not isinstance(value, int | str | timedelta):
        raise ValueError("must be minutes (60) or a duration such as 45m, 4h, 1d, 1h30m")
    if isinstance(value, timedelta):
        due = value
    elif isinstance(value, int):
        due = timedelta(minutes=value)
    else:
        spec = value.strip().lower()
        spec = f"{spec}m" if spec.isdigit() else spec  # "60" is minutes, as 60 is
        match = _DURATION.fullmatch(spec)
        if not spec or match is None:
            raise ValueError(f"{value!r} is not a duration; write e.g. 60, 45m, 4h, 1d or 1h30m")
        parts = {unit: int(number or 0) for unit, number in match.groupdict().items()}
        due = timedelta(days=parts["d"], hours=parts["h"], minutes=parts["m"])
    if due <= timedelta(0):
        raise ValueError("must be a positive duration (how soon to act)")
    return due


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as err:
        raise ValueError(f"bad regular expression {value!r}: {err}") from None
    return value


def _band(value: float) -> float:
    # Half the probability range or more would send every post to review.
    if not 0 <= value < 0.5:
        raise ValueError(f"{value} is out of range; use a number from 0 to below 0.5, e.g. 0.15")
    return value


Due = Annotated[timedelta, BeforeValidator(parse_due)]
Text = NonBlank
Regex = Annotated[str, AfterValidator(_regex)]
Band = Annotated[float, AfterValidator(_band)]


def _rate(value: float) -> float:
    if not 0 < value < 1:
        raise ValueError(f"{value} is out of range; use a share of posts above 0 and below 1")
    return value


Rate = Annotated[float, AfterValidator(_rate)]


class Outcome(BaseModel):
    """What the team does with a post of one intent (and sentiment)."""

    # Unknown keys are refused so that a typo ("priorty") fails at start-up, not silently.
    model_config = ConfigDict(extra="forbid", frozen=True)

    action: ActionType
    priority: Priority | None = None
    due: Due | None = None
    route: Route = "social_team"
    reason: Text

    @model_validator(mode="after")
    def _nothing_to_schedule_for_none(self) -> "Outcome":
        if self.action == "none" and (self.priority is not None or self.due is not None):
            raise ValueError("action 'none' takes no priority or due time; remove them")
        return self


class Rule(Outcome):
    """An intent's outcome, optionally replaced for posts of a given sentiment."""

    by_sentiment: dict[Sentiment, Outcome] = {}

    def for_sentiment(self, sentiment: str) -> Outcome:
        return self.by_sentiment.get(sentiment, self)


class CustomerCare(BaseModel):
    """Which responded-to posts are service requests about one specific claim or policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    intents: list[Intent]
    reason: Text
    keywords: list[Text] = []
    patterns: list[Regex] = []

    _matcher: re.Pattern[str] | None = PrivateAttr(default=None)

    def model_post_init(self, context: Any) -> None:
        # Keywords are whole words or phrases, any spacing: "min  skadeanmälan" matches.
        words = [
            r"(?<!\w)" + r"\s+".join(map(re.escape, keyword.split())) + r"(?!\w)"
            for keyword in self.keywords
        ]
        alternatives = words + [f"(?:{pattern})" for pattern in self.patterns]
        if alternatives:
            self._matcher = re.compile("|".join(alternatives), re.IGNORECASE)

    def matches(self, intents: Sequence[str], text: str) -> bool:
        """True when a post with these intents and text is about a specific claim."""
        return (
            self._matcher is not None
            and any(intent in self.intents for intent in intents)
            and self._matcher.search(text) is not None
        )


class Action(BaseModel):
    """What the social team should do with one post, and why."""

    type: ActionType
    priority: Priority | None = None
    due_by: datetime | None = None
    route: Route | None = None
    reason: str


class Policy(BaseModel):
    """The whole response policy file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Text
    review_band: Band
    review_rate: Rate | None = None
    rules: dict[Intent, Rule]
    no_intent: Rule
    customer_care: CustomerCare

    @field_validator("rules")
    @classmethod
    def _every_intent(cls, rules: dict[str, Rule]) -> dict[str, Rule]:
        missing = [intent for intent in INTENTS if intent not in rules]
        if missing:
            raise ValueError(
                f"no rule for {', '.join(map(repr, missing))}; add one "
                "(use action: none to ignore an intent)"
            )
        return rules

    def decide(
        self,
        labels: Sequence[str],
        sentiment: str,
        text: str,
        created_at: datetime | None,
        received_at: datetime,
    ) -> Action:
        """The action for one post, from its predicted intents, sentiment and text.

        Due times count from ``created_at`` (when the post was written) or, if unknown,
        from ``received_at``; naive datetimes are taken as UTC.
        """
        unknown = [label for label in labels if label not in self.rules]
        if unknown:
            raise ValueError(f"unknown intent {', '.join(map(repr, unknown))}")
        intents = [intent for intent in INTENTS if intent in labels]  # canonical order
        rules = [self.rules[intent] for intent in intents] or [self.no_intent]
        outcomes = [rule.for_sentiment(sentiment) for rule in rules]

        strongest = max((o.action for o in outcomes), key=ACTION_STRENGTH.index)
        winners = [o for o in outcomes if o.action == strongest]
        reasons = list(dict.fromkeys(o.reason for o in winners))  # unique, in order
        route: str | None = None
        if strongest != "none":
            customer_care = any(o.route == "customer_care" for o in winners)
            if strongest in RESPOND_TYPES and self.customer_care.matches(intents, text):
                customer_care = True
                reasons.append(self.customer_care.reason)
            route = "customer_care" if customer_care else "social_team"

        priorities = [o.priority for o in outcomes if o.priority is not None]
        dues = [o.due for o in outcomes if o.due is not None]
        start = as_utc(created_at if created_at is not None else received_at)
        return Action(
            type=strongest,
            priority=max(priorities, key=PRIORITY_RANK.index) if priorities else None,
            due_by=start + min(dues) if dues else None,
            route=route,
            reason=f"{' + '.join(intents) or 'no intent'}: {'; '.join(reasons)}",
        )

    def band_for(self, calibration: Mapping[str, Any] | None) -> float:
        """The review band to serve a model with: the one that flags ``review_rate`` of
        its validation posts (``calibration``: the model's ``review_calibration``), or
        ``review_band`` when the policy sets no rate or the model has no calibration."""
        from socialcare.core.review_rate import band_for_rate

        if self.review_rate is None or not calibration:
            return self.review_band
        return band_for_rate(calibration["closest_intent_percentiles"], self.review_rate)

    def uncertain(
        self,
        intent_prob: Mapping[str, float],
        thresholds: Mapping[str, float],
        band: float | None = None,
    ) -> list[str]:
        """Review reasons for intents whose probability is close to its threshold, e.g.
        ``"uncertain: complaint 0.48 near 0.45"``.

        Close means within ``band`` (default ``review_band``) of the room on that side
        of the threshold (the
        distance the reviewers' notebook orders by, socialcare.core.active_learning): with a
        threshold of 0.5 and a band of 0.15, 0.425 to 0.575; with a threshold of 0.15,
        0.1275 to 0.2775. An absolute band would flag every post whose probability for
        an intent with a low threshold is near zero.
        """
        import numpy as np

        from socialcare.core.active_learning import head_uncertainty

        names = [intent for intent in INTENTS if intent in intent_prob]
        probs = np.array([[intent_prob[name] for name in names]])
        limits = np.array([[thresholds[name] for name in names]])
        closeness = head_uncertainty(probs, np.ones((1, 1)), limits)[0, : len(names)]
        return [
            f"uncertain: {name} {intent_prob[name]:.2f} near {thresholds[name]:.2f}"
            for name, value in zip(names, closeness, strict=True)
            # The tolerance keeps a probability exactly on the band's edge inside it.
            if value >= 1.0 - (self.review_band if band is None else band) - 1e-9
        ]


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice (the second would silently win)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice; keep one", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _line_of(node: yaml.Node | None, loc: Sequence[Any]) -> int | None:
    """1-based line of the YAML node at ``loc`` (or of its nearest existing parent)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            found = [(k, v) for k, v in node.value if k.value == str(part)]
            if not found:
                break
            key, node = found[0]
            # A key that is itself wrong (unknown name) is reported on its own line.
            line = key.start_mark.line + 1
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def load_policy(path: Path = POLICY_FILE) -> Policy:
    """Read and check a response policy file; raise ``PolicyError`` naming each problem
    as ``file:line: field: message``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError([f"{path}: file: no such file; copy serving/policy.yaml"]) from None
    except UnicodeDecodeError:
        raise PolicyError([f"{path}: file: not valid UTF-8; save it as UTF-8"]) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: no arbitrary objects
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(err, "problem", None) or str(err)
        # The parser notices late ("expected ']'"); say where the broken part started.
        context, start = getattr(err, "context", None), getattr(err, "context_mark", None)
        if context and start is not None and mark is not None and start.line != mark.line:
            problem += f" ({context} on line {start.line + 1})"
        raise PolicyError([f"{where}: yaml: {problem}"]) from None
    if not isinstance(data, dict):
        raise PolicyError([f"{path}: policy: expected settings (version:, rules: ...)"])
    try:
        return Policy.model_validate(data)
    except ValidationError as err:
        problems = []
        for error, (field, message) in zip(
            err.errors(), describe_errors(err, "policy", noun="setting"), strict=True
        ):
            loc = error["loc"]
            if error["type"] == "missing":
                # A missing setting belongs to its section; one missing at the top, to the file.
                line = _line_of(root, loc[:-1]) if len(loc) > 1 else None
            else:
                line = _line_of(root, loc)
            where = f"{path}:{line}" if line is not None else str(path)
            problems.append(f"{where}: {field}: {message}")
        raise PolicyError(problems) from None


def frozen_copy(path: Path, directory: Path = VAR_DIR / "policies") -> Path:
    """A copy of the policy file named by its content, for the service to read: each worker
    BentoML (re)starts reads the policy, and must read the one checked at start-up, not the
    file as edited since."""
    content = Path(path).read_bytes()
    copy = Path(directory) / f"{hashlib.sha256(content).hexdigest()[:16]}.yaml"
    if not copy.exists():
        copy.parent.mkdir(parents=True, exist_ok=True)
        partial = copy.with_suffix(f".{os.getpid()}.tmp")
        partial.write_bytes(content)
        partial.replace(copy)  # whole or absent, even with two servers starting at once
    return copy
