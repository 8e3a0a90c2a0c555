"""Errors raised by retryq, each carrying the exit code the CLI turns it into.

The exit codes follow BSD ``sysexits.h`` where one fits, so that cron wrappers and
monitoring can tell "try again later" (75) from "a human must fix something" (65, 78).
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DriverMissing",
    "ExitCode",
    "InvalidInput",
    "JobNotFound",
    "JobStateError",
    "LockTimeout",
    "OpenJobExists",
    "QueueCorrupt",
    "RetryqError",
    "StoreIOError",
    "StoreUnavailable",
]

import enum


class ExitCode(enum.IntEnum):
    """Exit codes of the ``retryq`` command; part of its public contract."""

    OK = 0
    FAILURE = 1  # the command ran, but what it was asked for cannot be done (not found, doctor problems)
    USAGE = 2  # invalid arguments
    CRITICAL = 3  # `retryq report`: critical inconsistency (a retry was still scheduled)
    DATAERR = 65  # the queue file is corrupt
    SOFTWARE = 70  # a bug in retryq
    IOERR = 74  # the queue file or its directory cannot be read or written
    TEMPFAIL = 75  # the queue lock could not be taken in time
    CONFIG = 78  # configuration missing or wrong, workflow command not found
    SIGINT = 130
    SIGTERM = 143

    @staticmethod
    def of_signal(signum: int) -> int:
        """The exit status of a process ended by signal ``signum``, as shells report it: 128 + N."""
        return 128 + signum


class RetryqError(Exception):
    """Base class: a message fit for one line, and the exit code that goes with it."""

    exit_code: ExitCode = ExitCode.FAILURE


class InvalidInput(RetryqError, ValueError):
    """A client id, date, delay or other argument is not acceptable."""

    exit_code = ExitCode.USAGE


class JobNotFound(RetryqError, LookupError):
    """No job matches the given id or prefix (or the prefix is ambiguous)."""

    exit_code = ExitCode.FAILURE


class JobStateError(RetryqError):
    """The job is not in a state that allows this (cancelling a running job, requeueing a pending one)."""

    exit_code = ExitCode.FAILURE


class OpenJobExists(JobStateError):
    """A change would leave two open (pending or running) jobs for one workflow, client and date."""

    def __init__(self, message: str, job_ids: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.job_ids = job_ids


class QueueCorrupt(RetryqError):
    """The queue file is not a JSON array of valid jobs; it is left untouched."""

    exit_code = ExitCode.DATAERR


class StoreIOError(RetryqError, OSError):
    """The queue file or its directory cannot be read or written (permissions, disk full)."""

    exit_code = ExitCode.IOERR


class StoreUnavailable(RetryqError):
    """The queue's database cannot be reached (after a few tries); the next cron run tries again."""

    exit_code = ExitCode.TEMPFAIL


class LockTimeout(RetryqError, TimeoutError):
    """The queue lock was not obtained within the configured time."""

    exit_code = ExitCode.TEMPFAIL


class ConfigError(RetryqError):
    """The configuration is missing, invalid, or names a command that cannot be found."""

    exit_code = ExitCode.CONFIG


class DriverMissing(RetryqError):
    """The queue's backend needs a package that is not installed; the message names the extra to install.

    Exit 78, as a configuration error, but not a :class:`ConfigError`: ``doctor`` cannot check a
    queue it cannot open, and exits 78 as every other command does rather than report a finding.
    """

    exit_code = ExitCode.CONFIG
