from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from activities.paging.owners import (
    OwnerRequest,
    OwnershipError,
    check_ownership,
    load_ownership,
    parse_service_refs,
    resolve_owner,
)
from tests.fixtures.receivers import PD_TEAM_ROUTING_KEY
from tests.paging.conftest import APPROVER
from worker.cli import app as cli

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_lookup_order(owners_file: Path) -> None:
    ownership = load_ownership(owners_file)
    exact = resolve_owner(OwnerRequest(service="rag-api", namespace="prod"), ownership)
    assert (exact.team, exact.pagerduty_routing_key, exact.slack_channel) == (
        "ml-platform",
        PD_TEAM_ROUTING_KEY,
        "#ml-incidents",
    )
    assert exact.approvers == [APPROVER]
    assert resolve_owner(OwnerRequest(service="retriever", namespace="anywhere"), ownership).team == "search"
    assert resolve_owner(OwnerRequest(service="new-thing", namespace="staging"), ownership).team == "search"
    assert resolve_owner(OwnerRequest(service="rag-api", namespace="dev"), ownership).source == "none"
    labelled = resolve_owner(
        OwnerRequest(service="rag-api", namespace="prod", labels={"backout.dev/team": "search"}), ownership
    )
    assert (labelled.team, labelled.source) == ("search", "label")
    annotated = resolve_owner(
        OwnerRequest(service="x", namespace="y"), ownership, workload_team="ml-platform"
    )
    assert (annotated.team, annotated.source, annotated.slack_channel) == (
        "ml-platform",
        "annotation",
        "#ml-incidents",
    )


def test_routing_key_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "o.yaml"
    path.write_text(
        "teams: {a: {pagerduty_routing_key_env: PD_KEY_FOR_A}}\nservices: [{service: s, team: a}]\n"
    )
    monkeypatch.setenv("PD_KEY_FOR_A", "secret-key")
    assert (
        resolve_owner(OwnerRequest(service="s"), load_ownership(path)).pagerduty_routing_key == "secret-key"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("teams: [a, b]\n", "teams"),
        ("teams: {a: {approvers: [alice]}}\n", "approvers must be Slack user ids"),
        ("teams: {a: {}}\nservices: [{service: s}]\n", "services.0.team"),
        ("teams: {a: {colour: red}}\n", "colour"),
        ("- just\n- a list\n", "top level must be a mapping"),
        ("teams: {a: [\n", "invalid YAML"),
    ],
)
def test_bad_files_name_the_problem(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(OwnershipError, match=r"bad\.yaml") as caught:
        load_ownership(path)
    assert message in str(caught.value)


def test_check_reports_unowned_and_unknown_teams(tmp_path: Path) -> None:
    path = tmp_path / "o.yaml"
    path.write_text(
        "teams: {a: {slack_channel: '#a'}}\n"
        "services: [{service: s1, team: a}, {service: s2, team: ghost}]\n"
        "namespaces: {prod: a}\n"
    )
    report = check_ownership(load_ownership(path), parse_service_refs("prod/s3,dev/s4"))
    assert report.owned == {"s1": "a", "prod/s3": "a"}
    assert report.unowned == ["s2", "dev/s4"]
    assert any("ghost" in problem for problem in report.problems)


def test_parse_service_refs_rejects_bad_names() -> None:
    assert [r.label() for r in parse_service_refs("a, prod/b ,")] == ["a", "prod/b"]
    with pytest.raises(ValueError, match="NAMESPACE/NAME"):
        parse_service_refs("a/b/c")


def test_cli_exit_codes(owners_file: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(cli, ["owners", "check", "--file", str(owners_file), "--services", "prod/rag-api"])
    assert ok.exit_code == 0, ok.output
    assert "prod/rag-api -> ml-platform" in ok.output

    unowned = runner.invoke(
        cli, ["owners", "check", "--file", str(owners_file), "--services", "dev/orphan,prod/rag-api"]
    )
    assert unowned.exit_code == 1
    assert "dev/orphan" in unowned.output and "1 without owner" in unowned.output

    as_json = runner.invoke(
        cli, ["owners", "check", "-f", str(owners_file), "--services", "dev/orphan", "--json"]
    )
    assert as_json.exit_code == 1 and '"unowned": [\n    "dev/orphan"' in as_json.output

    missing = runner.invoke(cli, ["owners", "check", "--file", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "no such file" in missing.output
    bad_ref = runner.invoke(cli, ["owners", "check", "--file", str(owners_file), "--services", "a/b/c"])
    assert bad_ref.exit_code == 2 and "NAMESPACE/NAME" in bad_ref.output


def test_shipped_owners_file_is_valid() -> None:
    report = check_ownership(load_ownership(REPO_ROOT / "deploy" / "owners.yaml"), [])
    assert report.problems == [] and report.unowned == []
