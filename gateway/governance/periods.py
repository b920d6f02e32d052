"""Budget periods, calendar-aligned in UTC: a day starts at 00:00, a week on Monday 00:00, a
month on the 1st at 00:00. ``total`` never resets. Pure functions over a timestamp."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

Period = Literal["daily", "weekly", "monthly", "total"]
PERIODS: tuple[Period, ...] = ("daily", "weekly", "monthly", "total")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FOREVER = datetime(9999, 1, 1, tzinfo=UTC)


def window(period: Period, now: datetime) -> tuple[datetime, datetime]:
    """The [start, end) of the period that contains ``now``."""
    now = now.astimezone(UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "daily":
        return day, day + timedelta(days=1)
    if period == "weekly":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    if period == "monthly":
        start = day.replace(day=1)
        end = (
            start.replace(year=start.year + 1, month=1)
            if start.month == 12
            else (start.replace(month=start.month + 1))
        )
        return start, end
    return EPOCH, FOREVER


def label(period: Period, start: datetime) -> str:
    """A short stable name for one period, used in counter names: ``d20260305``, ``w20260302``,
    ``m202603``, ``t``."""
    if period == "daily":
        return "d" + start.strftime("%Y%m%d")
    if period == "weekly":
        return "w" + start.strftime("%Y%m%d")
    if period == "monthly":
        return "m" + start.strftime("%Y%m")
    return "t"
