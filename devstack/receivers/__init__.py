"""Local stand-ins for the paging services (PagerDuty, Slack), checking their documented contracts."""
