"""When a failed delivery is tried again: exponential backoff with jitter, never sooner than the
receiver's Retry-After, within the retry window; past it the delivery is dead."""

from __future__ import annotations

import datetime
import email.utils
import random
from dataclasses import dataclass

from ..store.base import DELIVERY_DEAD, NotificationDelivery


@dataclass(frozen=True)
class Retries:
    window_seconds: float = 24 * 3600.0  # from when the delivery was owed (--notify-retry-hours)
    min_seconds: float = 1.0  # the first wait (--notify-backoff-min-seconds), doubling...
    max_seconds: float = 600.0  # ...up to this (--notify-backoff-max-seconds)

    def backoff(self, attempts: int) -> float:
        """The wait after the `attempts`-th failure: doubling from min_seconds up to max_seconds,
        drawn from its upper half (jitter: a receiver back after an outage is not hit by every
        delivery at the same moment)."""
        wait = min(self.max_seconds, self.min_seconds * 2 ** min(attempts - 1, 60))
        return random.uniform(wait / 2, wait)

    def after_failure(self, delivery: NotificationDelivery, now_us: int, retry_after: float | None) -> None:
        """Sets the delivery's next attempt, or makes it dead once its window has run out. The
        last attempt is at the window's end, however long Retry-After or the backoff asks for."""
        end_us = delivery.owed_time + int(self.window_seconds * 1e6)
        if now_us >= end_us:
            delivery.state = DELIVERY_DEAD
            return
        wait = max(self.backoff(delivery.attempts), retry_after or 0.0)
        delivery.next_attempt_time = min(now_us + int(wait * 1e6), end_us)


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """A Retry-After header's wait (delay-seconds, or an HTTP date, `now` in unix seconds);
    None for none or one that says nothing understandable."""
    value = (value or "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT, whatever it says
        when = when.replace(tzinfo=datetime.timezone.utc)
    return max(0.0, when.timestamp() - now)
