"""The response policy: the shipped rules, how intents combine, due times, bad files."""

import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from serving.policy import Action, Policy, PolicyError, frozen_copy, load_policy, parse_due
from socialcare.core.labels import INTENTS
from socialcare.core.paths import POLICY_FILE

WRITTEN = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
RECEIVED = WRITTEN + timedelta(minutes=7)


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy()


def decide(policy: Policy, labels: list[str], sentiment: str = "neutral", text: str = "") -> Action:
    return policy.decide(labels, sentiment, text, created_at=WRITTEN, received_at=RECEIVED)


def test_shipped_policy_loads_with_a_version_and_a_rule_per_intent(policy):
    assert POLICY_FILE.name == "policy.yaml"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}\.\d+", policy.version)
    assert set(policy.rules) == set(INTENTS)
    assert 0 < policy.review_band < 0.5


# --- one test per rule of the insurer's deck ---------------------------------------


def test_complaint_always_respond_high_within_an_hour(policy):
    action = decide(policy, ["complaint"], "negative", "Sex veckor och inget besked.")
    assert (action.type, action.priority, action.route) == ("respond", "high", "social_team")
    assert action.due_by == WRITTEN + timedelta(minutes=60)
    assert action.reason.startswith("complaint: ") and "always respond" in action.reason


def test_question_always_respond_within_a_day(policy):
    action = decide(policy, ["question"], "neutral", "Qualcuno sa se copre la grandine?")
    assert (action.type, action.route) == ("respond", "social_team")
    assert action.due_by == WRITTEN + timedelta(hours=24)
    assert action.reason.startswith("question: ")


def test_factual_error_always_respond_within_an_hour(policy):
    action = decide(policy, ["factual_error"], "negative", "De betalar ALDRIG för vattenskador")
    assert (action.type, action.priority) == ("respond", "high")
    assert action.due_by == WRITTEN + timedelta(minutes=60)
    assert "correct" in action.reason


def test_praise_respond_if_time_and_like(policy):
    action = decide(policy, ["praise"], "positive", "Snabb och trevlig hjälp, tack!")
    assert action.type == "respond_if_time"
    assert action.due_by is None  # no deadline: only if time allows
    assert "like" in action.reason


@pytest.mark.parametrize("sentiment", ["neutral", "positive"])
def test_humour_not_aimed_at_the_insurer_is_liked_and_watched(policy, sentiment):
    action = decide(policy, ["humour"], sentiment, "Il mio cane ha mangiato la polizza 🐶")
    assert action.type == "like"
    assert "watch" in action.reason and "don't respond" in action.reason


def test_negative_humour_or_smear_is_only_watched(policy):
    action = decide(policy, ["humour"], "negative", "Ponte Assicurazioni: il ponte che crolla")
    assert action.type == "watch"
    assert "watch only" in action.reason


@pytest.mark.parametrize(
    "labels, text",
    [
        (["question"], "Behöver en kopia på beslutet för skadenummer 39-7720"),
        (["complaint"], "Väntar fortfarande. Skadenummer 38-2207."),
        (["complaint", "question"], "Vad händer med min skadeanmälan? Ingen svarar."),
        (["question"], "Buongiorno, a che punto è la mia pratica?"),
        (["question"], "Documenti inviati per il sinistro 2023/88412, confermate?"),
        (["complaint"], "Numero di sinistro 12345678, due mesi senza risposta"),
        (["question"], "Potete verificare la pratica [policy_number]?"),
    ],
)
def test_service_request_about_a_specific_claim_goes_to_customer_care(policy, labels, text):
    action = decide(policy, labels, "negative", text)
    assert (action.type, action.route) == ("respond", "customer_care")
    assert "customer care" in action.reason


@pytest.mark.parametrize(
    "labels, text",
    [
        # The same kind of post without a specific claim stays with the social team.
        (["question"], "Täcker hemförsäkringen cykelstöld?"),
        (["complaint"], "Il premio è passato da 610 a 890 euro, vergogna"),
        # Dates, prices and month/year are not case numbers.
        (["complaint"], "Sinistro del 18/10 e ancora niente, pagato 1.150 euro a 12/2024"),
        # Thanks that mention one's claim are not a service request.
        (["praise"], "Grazie, la mia pratica è stata chiusa in 3 settimane!"),
    ],
)
def test_posts_without_a_claim_request_stay_with_the_social_team(policy, labels, text):
    assert decide(policy, labels, "neutral", text).route == "social_team"


def test_no_intent_means_no_action(policy):
    action = decide(policy, [], "neutral", "Nyheter: nya regler för elsparkcyklar från 1 juli")
    assert action.type == "none"
    assert (action.priority, action.due_by, action.route) == (None, None, None)
    assert action.reason.startswith("no intent: ")


@pytest.mark.parametrize("labels", [[], *[[intent] for intent in INTENTS]])
@pytest.mark.parametrize("sentiment", ["negative", "neutral", "positive"])
def test_every_action_carries_a_reason_naming_its_intents(policy, labels, sentiment):
    reason = decide(policy, labels, sentiment).reason
    assert reason.split(": ", 1)[0] == (" + ".join(labels) or "no intent")
    assert len(reason.split(": ", 1)[1]) > 5


# --- combining intents --------------------------------------------------------------


def test_complaint_and_question_respond_with_the_highest_priority_and_earliest_due(policy):
    action = decide(policy, ["question", "complaint"], "negative", "När får jag besked??")
    assert action.type == "respond"
    assert action.priority == "high"  # complaint's, not question's medium
    assert action.due_by == WRITTEN + timedelta(minutes=60)  # not the question's 24 h
    # Intents in the label set's order, whatever order the model gave them in.
    assert action.reason == "complaint + question: always respond"


def test_strongest_action_wins(policy):
    praise_and_humour = decide(policy, ["praise", "humour"], "positive")
    assert praise_and_humour.type == "respond_if_time"
    assert praise_and_humour.reason.startswith("humour + praise: ")
    mocking_question = decide(policy, ["question", "humour"], "negative")
    assert (mocking_question.type, mocking_question.priority) == ("respond", "medium")
    assert mocking_question.due_by == WRITTEN + timedelta(hours=24)
    thanks_and_complaint = decide(policy, ["praise", "complaint"], "positive")
    assert (thanks_and_complaint.type, thanks_and_complaint.priority) == ("respond", "high")


def test_unknown_intent_is_refused(policy):
    with pytest.raises(ValueError, match="'complain'"):
        decide(policy, ["complain"])


# --- due times ----------------------------------------------------------------------


def test_due_time_counts_from_created_at_and_naive_times_are_utc(policy):
    naive = policy.decide(["complaint"], "negative", "", datetime(2026, 11, 20, 10), RECEIVED)
    assert naive.due_by == datetime(2026, 11, 20, 11, tzinfo=UTC)
    assert naive.model_dump(mode="json")["due_by"] == "2026-11-20T11:00:00Z"
    stockholm = timezone(timedelta(hours=1))
    local = policy.decide(
        ["complaint"], "negative", "", datetime(2026, 11, 20, 11, tzinfo=stockholm), RECEIVED
    )
    assert local.due_by == datetime(2026, 11, 20, 11, tzinfo=UTC)
    assert local.due_by.utcoffset() == timedelta(0)


def test_due_time_counts_from_receipt_without_created_at(policy):
    action = policy.decide(["question"], "neutral", "", created_at=None, received_at=RECEIVED)
    assert action.due_by == RECEIVED + timedelta(hours=24)


@pytest.mark.parametrize(
    "value, minutes",
    [(60, 60), ("60", 60), ("45m", 45), ("90 min", 90), ("4h", 240), ("1d", 1440), ("1h30m", 90)],
)
def test_due_accepts_minutes_or_durations(value, minutes):
    assert parse_due(value) == timedelta(minutes=minutes)


# --- review band --------------------------------------------------------------------


def test_uncertain_intents_are_those_near_their_threshold(policy):
    thresholds = dict.fromkeys(INTENTS, 0.45)
    edge = 0.45 + policy.review_band * (1 - 0.45)  # on the band's edge above: inside
    probs = dict.fromkeys(INTENTS, 0.01) | {"complaint": 0.48, "praise": edge}
    reasons = policy.uncertain(probs, thresholds)
    assert reasons[0] == "uncertain: complaint 0.48 near 0.45"
    assert [r.split()[1] for r in reasons] == ["complaint", "praise"]
    assert policy.uncertain(dict.fromkeys(INTENTS, 0.95), thresholds) == []


def test_band_is_relative_to_the_room_beside_a_low_threshold(policy):
    """With a threshold of 0.15, p = 0.02 is a confident no, p = 0.14 is not."""
    low = dict.fromkeys(INTENTS, 0.15)
    assert policy.uncertain(dict.fromkeys(INTENTS, 0.02), low) == []
    flagged = policy.uncertain(dict.fromkeys(INTENTS, 0.01) | {"humour": 0.14}, low)
    assert flagged == ["uncertain: humour 0.14 near 0.15"]
    above = 0.15 + 0.9 * policy.review_band * 0.85  # inside the band above the threshold
    assert policy.uncertain(dict.fromkeys(INTENTS, 0.01) | {"humour": above}, low)


# --- the rules are the file's -------------------------------------------------------


def test_rules_come_from_the_file_not_the_code(tmp_path):
    text = POLICY_FILE.read_text(encoding="utf-8")
    text = text.replace("    action: respond_if_time\n    priority: low\n", "    action: like\n")
    text = text.replace("    due: 24h\n", "    due: 1h30m\n")
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    edited = load_policy(path)
    assert decide(edited, ["praise"]).type == "like"
    assert decide(edited, ["question"]).due_by == WRITTEN + timedelta(minutes=90)


# --- bad policy files fail at start-up, naming the line and the field -----------------


def _edited(tmp_path: Path, old: str, new: str) -> tuple[Path, int]:
    """The shipped policy with the first ``old`` replaced by ``new``; returns its line."""
    text = POLICY_FILE.read_text(encoding="utf-8")
    assert old in text, old
    line = text[: text.index(old)].count("\n") + 1
    path = tmp_path / "policy.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path, line


@pytest.mark.parametrize(
    "old, new, field, message",
    [
        ("    priority: high", "    priorty: high", "rules.complaint.priorty", "unknown setting"),
        ("  complaint:", "  complain:", "rules.complain", "'complain' is not allowed"),
        ("    due: 60m", "    due: -5", "rules.complaint.due", "positive"),
        ("    due: 24h", "    due: 24 hours", "rules.question.due", "not a duration"),
        ("    action: respond_if_time", "    action: reply", "rules.praise.action", "'reply'"),
        ("      negative:", "      angry:", "rules.humour.by_sentiment.angry", "'angry'"),
        ('version: "2026-11-30.1"', "version: 2026-11-26", "version", "put it in quotes"),
        ("review_band: 0.15", "review_band: 0.7", "review_band", "out of range"),
        ("    - skadenummer", "    - ''", "customer_care.keywords.0", "must not be empty"),
        ("    - '\\[policy_number\\]'", "    - '[unclosed'", "customer_care.patterns.2", "regular"),
        ("  intents: [complaint, question]", "  intents: [complaint, questions]", "", "questions"),
        ("no_intent:\n  action: none", "no_intent:\n  action: none\n  priority: low", "", "none"),
    ],
)
def test_bad_policy_file_names_line_and_field(tmp_path, old, new, field, message):
    path, line = _edited(tmp_path, old, new)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    problem = str(caught.value).splitlines()[1]
    if field:
        assert problem.startswith(f"{path}:{line}: {field}: "), problem
    assert message in problem


def test_missing_version_names_the_field(tmp_path):
    path, _ = _edited(tmp_path, 'version: "2026-11-30.1"', "")
    with pytest.raises(PolicyError, match=r"policy.yaml: version: is required"):
        load_policy(path)


def test_missing_intent_rule_names_the_intent(tmp_path):
    text = POLICY_FILE.read_text(encoding="utf-8")
    without_praise, removed = re.subn(r"  praise:\n(?:    .*\n|\n)+", "", text)
    assert removed == 1
    path = tmp_path / "policy.yaml"
    path.write_text(without_praise, encoding="utf-8")
    with pytest.raises(PolicyError, match=r"rules: no rule for 'praise'"):
        load_policy(path)


def test_bad_yaml_names_the_line(tmp_path):
    path, line = _edited(tmp_path, "  question:", "  question: [")
    with pytest.raises(PolicyError, match=rf"policy.yaml:\d+: yaml: .* on line {line}\)"):
        load_policy(path)


def test_a_key_given_twice_is_refused(tmp_path):
    path, line = _edited(tmp_path, "    priority: medium\n", "    priority: medium\n" * 2)
    with pytest.raises(PolicyError, match=rf"policy.yaml:{line + 1}: yaml: key 'priority'"):
        load_policy(path)


def test_missing_or_empty_file(tmp_path):
    with pytest.raises(PolicyError, match="no such file"):
        load_policy(tmp_path / "absent.yaml")
    (tmp_path / "empty.yaml").write_text("# nothing yet\n", encoding="utf-8")
    with pytest.raises(PolicyError, match="expected settings"):
        load_policy(tmp_path / "empty.yaml")


def test_the_service_reads_a_frozen_copy_of_the_policy(tmp_path):
    """A worker restarted later reads the policy checked at start-up, not the file as
    edited since; the same content shares one copy."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY_FILE.read_text(encoding="utf-8"), encoding="utf-8")
    copy = frozen_copy(policy, tmp_path / "served")
    policy.write_text("version: broken\nrules: [", encoding="utf-8")
    assert load_policy(copy).version == load_policy(POLICY_FILE).version
    assert frozen_copy(POLICY_FILE, tmp_path / "served") == copy
    assert frozen_copy(policy, tmp_path / "served") != copy
    assert not list((tmp_path / "served").glob("*.tmp"))
