"""Which failed connections no retry can mend (exit 78 at once), and which are a server out of reach (75)."""

from __future__ import annotations

import psycopg
import pytest

from retryq.stores.postgres.connection import connection_lost, refused_for_good

AT = 'connection failed: connection to server at "10.0.0.5", port 5432 failed: '


@pytest.mark.parametrize(
    "message",
    [
        AT + 'FATAL:  password authentication failed for user "retryq"',
        AT + 'FATAL:  role "retryq" does not exist',
        AT + 'FATAL:  database "jobs" does not exist',
        AT + 'FATAL:  no pg_hba.conf entry for host "10.0.0.9", user "retryq", database "jobs", no encryption',
        AT + 'FATAL:  role "retryq" is not permitted to log in',
        AT + 'FATAL:  permission denied for database "jobs"',
        AT + "fe_sendauth: no password supplied",
        'connection is bad: invalid integer value "abc" for connection option "port"',
        AT + "server does not support SSL, but SSL was required",
    ],
)
def test_a_refusal_is_for_good(message: str) -> None:
    assert refused_for_good(psycopg.OperationalError(message))


@pytest.mark.parametrize(
    "message",
    [
        AT + "Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?",
        AT + "FATAL:  the database system is starting up",
        AT + "FATAL:  the database system is shutting down",
        AT + "FATAL:  the database system is in recovery mode",
        AT + "FATAL:  sorry, too many clients already",
        AT + "FATAL:  remaining connection slots are reserved for roles with the SUPERUSER attribute",
        AT + "timeout expired",
        'connection failed: could not translate host name "db.internal" to address: Temporary failure in name '
        "resolution",
        "terminating connection due to administrator command",
        "server closed the connection unexpectedly",
    ],
)
def test_a_server_out_of_reach_or_restarting_is_temporary(message: str) -> None:
    error = psycopg.OperationalError(message)
    assert not refused_for_good(error)
    assert connection_lost(error)
