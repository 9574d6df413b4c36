"""Time: one rule for times without a zone, used wherever a time enters or is stored."""

from datetime import UTC, datetime


def as_utc(moment: datetime) -> datetime:
    """The same moment in UTC. A naive time is taken as UTC: the listening tools and the
    data files write UTC without an offset."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)
