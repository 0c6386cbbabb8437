"""Shared pytest configuration. Fixtures live in tests/fixtures/, one module per real component."""

pytest_plugins = [
    "tests.fixtures.temporal",
    "tests.fixtures.kube",
    "tests.fixtures.receivers",
    "tests.fixtures.simservice",
    "tests.fixtures.prometheus",
]
