"""Limits and defaults that the record and the stores need, below the settings: each one's home.

The settings' declaration (``retryq.settings.declaration``) refers to these for the keys of
``retryq.toml`` they bound or default; nothing else spells their values. Light on purpose: the
command line reads them for its help without importing the job model.
"""

from __future__ import annotations

__all__ = [
    "DUE_WINDOW",
    "LOCK_TIMEOUT",
    "MAX_ATTEMPTS",
    "MAX_MISSING",
    "MAX_PRIORITY",
    "MAX_RATIO",
    "MAX_WAIT",
    "MIN_PRIORITY",
    "REPORT_DELAY_MINUTES",
]

from datetime import timedelta

#: The most attempts a job may have: past that, retrying is a loop, not a policy.
MAX_ATTEMPTS = 100

#: A job's priority: higher runs first, 0 by default (and for records written before priorities).
MIN_PRIORITY, MAX_PRIORITY = -100, 100

#: A due job waiting longer than this is claimed before jobs of higher priority that became due after it.
MAX_WAIT = timedelta(hours=1)

#: How long a command waits for the queue's lock (a file's lock, a database's row lock) by default.
LOCK_TIMEOUT = timedelta(seconds=30)

#: How far ahead of its time a job counts as due for a ``process`` run (cron starts on the minute, as
#: ``at`` does); also how late an attempt may start and still count as on time. ``due_window`` in the config.
DUE_WINDOW = timedelta(minutes=1)

#: ``report``'s tolerance by default: a fetch missing at most this many results, or at most this
#: ratio of the total, is DEGRADED rather than ERROR.
MAX_MISSING = 3
MAX_RATIO = 0.005
#: How long the retry of an incomplete fetch waits, in minutes, when nothing says otherwise.
REPORT_DELAY_MINUTES = 60
