"""What the deployment tests read: the task definition rendered with example values, and the
CloudFormation template's resources."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

from infra.render_task_def import render
from ml.testing.processes import REPO

BIN = Path(sys.executable).parent
TEMPLATE = REPO / "infra" / "fraud-scoring.yaml"
WORKFLOW = REPO / ".github" / "workflows" / "ci-cd.yml"
ACCOUNT = "123456789012"
REGION = "us-east-1"

EXAMPLE_VALUES = {
    "EXECUTION_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/fraud-scoring-execution",
    "API_TASK_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/fraud-scoring-api-task",
    "API_REPOSITORY_URI": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/fraud-scoring-api",
    "STORE_URI": f"s3://fraud-scoring-artifacts-{ACCOUNT}-{REGION}/fraud",
    "API_KEYS_SECRET_ARN": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:fraud/api-AbCdEf",
    "ADMIN_API_KEYS_SECRET_ARN": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:fraud/a-Gh",
    "API_LOG_GROUP": "/ecs/fraud-scoring-api",
    "TRUSTED_KEYS": "MCowBQYDK2VwAyEAZmFrZS1wdWJsaWMta2V5LTAwMDA=",
    "SERVICE_NAME": "fraud-scoring-api",
    "AWS_REGION": REGION,
}


def task_definition(values: dict[str, str] = EXAMPLE_VALUES) -> dict[str, Any]:
    rendered: dict[str, Any] = json.loads(render((REPO / "task-def.json").read_text(), values))
    return rendered


def container() -> dict[str, Any]:
    (api,) = task_definition()["containerDefinitions"]
    assert isinstance(api, dict)
    return api


class CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation short-form tags (!Ref, !Sub, ...) as plain values."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node, deep=True)}
    assert isinstance(node, yaml.MappingNode)
    return {suffix: loader.construct_mapping(node, deep=True)}


CfnLoader.add_multi_constructor("!", _tag)


def template() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load(TEMPLATE.read_text(), Loader=CfnLoader)  # noqa: S506
    resources: dict[str, Any] = loaded["Resources"]
    return resources
