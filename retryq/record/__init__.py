"""The job record and its rules: models, statuses, transitions, backoff, times and errors; no I/O."""
