"""Detached child processes of the local control plane: ports, liveness, reaping."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pid_alive(pid: int, expected_name: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if ") Z " in stat:  # a zombie is gone for our purposes
        return False
    # Right after exec the new image's arguments may not be set up yet: an empty cmdline is still ours.
    return not cmdline or Path(cmdline).name == expected_name


def reap(pid: int) -> str:
    """Collect an exited child (so it leaves no zombie) and say how it ended."""
    try:
        reaped, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return "not our child"
    if reaped == 0:
        return "still running"
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


def etcd_supports_no_fsync(etcd_binary: str) -> bool:
    help_text = subprocess.run([etcd_binary, "--help"], capture_output=True, text=True).stdout
    return "--unsafe-no-fsync" in help_text
