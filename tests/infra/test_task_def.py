"""task-def.json checked without an AWS account: botocore's own RegisterTaskDefinition shape,
moto's ECS (server mode, real HTTP), and the timings and secrets it must carry."""

from __future__ import annotations

from typing import Any

import boto3
import botocore.session
import pytest
from botocore.validate import ParamValidator

from infra.render_task_def import render
from ml.testing.processes import REPO
from service.settings import Settings
from tests.infra.deployment import (
    EXAMPLE_VALUES,
    REGION,
    container,
    task_definition,
)


def register_shape() -> Any:
    """The input shape of ECS RegisterTaskDefinition, as botocore ships it."""
    model = botocore.session.get_session().get_service_model("ecs")
    shape = model.operation_model("RegisterTaskDefinition").input_shape
    assert shape is not None
    return shape


def test_task_definition_matches_the_register_task_definition_shape() -> None:
    report = ParamValidator().validate(task_definition(), register_shape())
    assert not report.has_errors(), report.generate_report()


def test_a_shape_error_is_caught() -> None:
    shape = register_shape()
    broken = task_definition() | {"cpu": 2048, "unknownField": True}
    assert ParamValidator().validate(broken, shape).has_errors()


def test_task_definition_registers_in_moto_ecs(moto_endpoint: str) -> None:
    ecs = boto3.client("ecs", endpoint_url=moto_endpoint, region_name=REGION)
    registered = ecs.register_task_definition(**task_definition())["taskDefinition"]
    assert registered["family"] == "fraud-scoring-api"
    assert registered["requiresCompatibilities"] == ["FARGATE"]
    described = ecs.describe_task_definition(taskDefinition=registered["taskDefinitionArn"])
    api = described["taskDefinition"]["containerDefinitions"][0]
    assert {s["name"] for s in api["secrets"]} == {"FRAUD_API_KEYS", "FRAUD_ADMIN_API_KEYS"}


def test_fargate_awsvpc_and_sizing() -> None:
    task = task_definition()
    assert task["networkMode"] == "awsvpc"
    assert task["requiresCompatibilities"] == ["FARGATE"]
    # 2 vCPU for 2 Gunicorn workers (the benchmark's shape); 4 GiB is Fargate's minimum there.
    assert (task["cpu"], task["memory"]) == ("2048", "4096")
    env = {e["name"]: e["value"] for e in container()["environment"]}
    assert env["WEB_CONCURRENCY"] == "2"


def test_api_keys_only_through_secrets() -> None:
    api = container()
    env = {e["name"] for e in api["environment"]}
    # FRAUD_TRUSTED_KEYS holds public keys (signature checking), which are no secret.
    assert not any(("KEY" in name or "SECRET" in name) for name in env - {"FRAUD_TRUSTED_KEYS"})
    assert "FRAUD_TRUSTED_KEYS" in env
    assert all(s["valueFrom"].startswith("arn:aws:secretsmanager:") for s in api["secrets"])


def test_shutdown_and_health_timings_fit_together() -> None:
    api = container()
    env = {e["name"]: e["value"] for e in api["environment"]}
    grace = float(env["FRAUD_GRACEFUL_TIMEOUT_S"])
    assert grace == Settings.model_fields["graceful_timeout_s"].default
    assert api["stopTimeout"] > grace  # ECS waits longer than Gunicorn's graceful shutdown
    # ... and than the shipper's last shipment of the decision log after it.
    drain = Settings.model_fields["capture_drain_timeout_s"].default
    assert env["FRAUD_CAPTURE"] == "1"
    assert api["stopTimeout"] > grace + drain
    check = api["healthCheck"]
    assert "/health/live" in " ".join(check["command"])
    # Longer than a model load (the benchmark's cold start is a few seconds).
    assert check["startPeriod"] >= 30


def test_read_only_root_with_writable_tmp_and_awslogs() -> None:
    task, api = task_definition(), container()
    assert api["readonlyRootFilesystem"] is True
    assert api["mountPoints"] == [
        {"sourceVolume": "tmp", "containerPath": "/tmp", "readOnly": False}
    ]
    assert task["volumes"] == [{"name": "tmp"}]
    assert api["logConfiguration"]["logDriver"] == "awslogs"
    assert api["user"] == "10001:10001"


def test_render_refuses_an_unfilled_placeholder() -> None:
    partial = {k: v for k, v in EXAMPLE_VALUES.items() if k != "STORE_URI"}
    with pytest.raises(SystemExit, match="no value for STORE_URI"):
        render((REPO / "task-def.json").read_text(), partial)


# --- infra/ ----------------------------------------------------------------------------------
