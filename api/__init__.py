"""The HTTP API: alert sources, change reports, incidents, approvals, Slack buttons, health and metrics.

`api.app.create_app` assembles it from one router per concern; every alert source is one module
in `api/sources/` (a payload model and a short route over `api.intake.deliver`).
"""
