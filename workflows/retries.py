"""Retry policies of the incident's activities (the paging channels have theirs in workflows/paging.py)."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

SHORT_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=5,
)
# Long enough to ride out an apiserver restart (about 45 s of retries), still bounded.
REMEDIATE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=8,
)
