"""What a local cluster records in `<state_dir>/cluster.json` and what `status` reports."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class ProcessInfo(BaseModel):
    name: str
    pid: int
    log: str
    args: list[str] = Field(default_factory=list)


class ClusterState(BaseModel):
    version: str
    started_at: datetime
    apiserver_url: str
    etcd_url: str
    kubeconfig: str
    processes: list[ProcessInfo] = Field(default_factory=list)


class ComponentStatus(BaseModel):
    name: str
    pid: int
    running: bool


class ClusterStatus(BaseModel):
    state_dir: str
    up: bool
    ready: bool = False
    apiserver_url: str | None = None
    kubeconfig: str | None = None
    version: str | None = None
    components: list[ComponentStatus] = Field(default_factory=list)
    nodes_ready: int = 0
