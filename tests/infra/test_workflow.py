""".github/workflows: the GitHub workflow schema (check-jsonschema's vendored copy), and a
pipeline that tests, then deploys with least privilege."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from ml.testing.processes import REPO
from tests.infra.deployment import (
    BIN,
    WORKFLOW,
)


def test_workflow_matches_the_github_schema() -> None:
    result = subprocess.run(
        [
            str(BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.github-workflows",
            *map(str, sorted(WORKFLOW.parent.glob("*.yml"))),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflow_schema_check_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    stepz: []\n")
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0


def test_workflow_tests_then_deploys_with_least_privilege() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    assert workflow["permissions"] == {"contents": "read"}
    jobs = workflow["jobs"]
    assert all("timeout-minutes" in job for job in jobs.values())
    test_steps = [s.get("run", "") for s in jobs["test"]["steps"]]
    ci_run = (REPO / ".ci" / "run").read_text()
    assert "bash .ci/run" in test_steps
    assert "make test" in ci_run
    deploy = jobs["deploy"]
    assert deploy["needs"] == "test"
    assert deploy["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    assert deploy["permissions"] == {"contents": "read", "id-token": "write"}
    assert deploy["concurrency"] == {"group": "deploy-production", "cancel-in-progress": False}
    uses = [s.get("uses", "") for s in deploy["steps"]]
    for action in (
        "aws-actions/configure-aws-credentials@",
        "aws-actions/amazon-ecr-login@",
        "aws-actions/amazon-ecs-render-task-definition@",
        "aws-actions/amazon-ecs-deploy-task-definition@",
    ):
        assert any(u.startswith(action) for u in uses), action
    deploy_step = next(
        s
        for s in deploy["steps"]
        if s.get("uses", "").startswith("aws-actions/amazon-ecs-deploy-task-definition@")
    )
    assert deploy_step["with"]["wait-for-service-stability"] is True
    text = WORKFLOW.read_text()
    assert "aws-access-key-id" not in text
    assert "AWS_SECRET_ACCESS_KEY" not in text
    assert "${{ github.sha }}" in text  # images are tagged with the commit
