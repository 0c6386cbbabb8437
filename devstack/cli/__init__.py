"""The development harness's `backout` commands (demo, cluster, bench).

Registered in the `backout.commands` entry-point group by devstack/pyproject.toml; the
`backout` CLI loads each module only when its command runs.
"""
