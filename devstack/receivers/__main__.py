"""`python -m devstack.receivers`: run the local PagerDuty and Slack receivers until Ctrl-C."""

from devstack.receivers.local import main

main()
