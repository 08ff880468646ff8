"""task-def.json, infra/ and .github/workflows, checked without an AWS account: botocore's own
RegisterTaskDefinition shape, moto's ECS and CloudFormation (server mode, real HTTP), cfn-lint,
and check-jsonschema's vendored GitHub-workflow schema.

Over 300 lines: one file for the whole AWS delivery (task definition, stack, workflow), which
are checked against each other (names, ports, timings, roles)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
import yaml
from botocore.validate import ParamValidator

from infra.render_task_def import OUTPUTS, render
from service.observe.emf import NAMESPACE, EmfReporter
from service.observe.metrics import Metrics
from service.settings import Settings
from tests.support.processes import REPO

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


# --- task-def.json ---------------------------------------------------------------------------


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


def test_cfn_lint_passes() -> None:
    result = subprocess.run(
        [str(BIN / "cfn-lint"), str(TEMPLATE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint_can_fail(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        TEMPLATE.read_text().replace("Type: AWS::ECS::Cluster", "Type: AWS::ECS::Clustr")
    )
    result = subprocess.run(
        [str(BIN / "cfn-lint"), str(broken)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0


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


def test_bucket_is_versioned_encrypted_private_and_tls_only() -> None:
    resources = template()
    bucket = resources["ArtifactBucket"]["Properties"]
    assert bucket["VersioningConfiguration"]["Status"] == "Enabled"
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    (statement,) = resources["ArtifactBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


ALARMS = {  # resource -> what it watches
    "ErrorRateAlarm": "AWS/ApplicationELB 5xx per request",
    "LatencyP99Alarm": "AWS/ApplicationELB TargetResponseTime",
    "UnhealthyTasksAlarm": "AWS/ApplicationELB UnHealthyHostCount",
    "ReloadFailuresAlarm": "FraudScoring ReloadFailures",
    "ScoreDriftAlarm": "FraudScoring ScorePSI",
    "InputDriftAlarm": "FraudScoring MaxInputPSI",
}


def resolve(value: Any, known: dict[str, Any]) -> Any:
    """A template value with !Ref, !GetAtt and !Sub filled from `known`."""
    if isinstance(value, list):
        return [resolve(v, known) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Ref"} or set(value) == {"GetAtt"}:
        return known[next(iter(value.values()))]
    if set(value) == {"Sub"}:
        return re.sub(r"\$\{([^}]+)\}", lambda m: str(known[m.group(1)]), value["Sub"])
    return {k: resolve(v, known) for k, v in value.items()}


def test_every_alarm_notifies_the_topic() -> None:
    resources = template()
    alarms = {k for k, v in resources.items() if v["Type"] == "AWS::CloudWatch::Alarm"}
    assert alarms == set(ALARMS)
    for name in alarms:
        properties = resources[name]["Properties"]
        assert properties["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        assert properties["OKActions"] == [{"Ref": "AlarmTopic"}], name
        assert properties["TreatMissingData"] == "notBreaching", name  # no traffic: no alarm
    assert resources["AlarmEmailSubscription"]["Properties"]["TopicArn"] == {"Ref": "AlarmTopic"}


def test_the_service_alarms_watch_what_the_service_emits() -> None:
    """Namespace, metric names and the Service dimension must be those of service/observe/emf.py's
    lines, and the task definitions must turn those lines on: otherwise the alarms watch
    metrics that never exist and stay quiet forever."""
    metrics = Metrics()
    reporter = EmfReporter("fraud-scoring-api", metrics.families)
    document = reporter.document()
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    emitted = {m["Name"] for m in directive["Metrics"]} | {"ScorePSI", "MaxInputPSI"}
    resources = template()
    for name in ("ReloadFailuresAlarm", "ScoreDriftAlarm", "InputDriftAlarm"):
        properties = resources[name]["Properties"]
        assert properties["Namespace"] == NAMESPACE
        assert properties["MetricName"] in emitted
        assert [d["Name"] for d in properties["Dimensions"]] == directive["Dimensions"][0]
        assert properties["Dimensions"][0]["Value"] == {"GetAtt": "Service.Name"}
    environment = {
        e["name"]: e["value"] for e in task_definition()["containerDefinitions"][0]["environment"]
    }
    assert float(environment["FRAUD_EMF_INTERVAL_S"]) > 0
    assert environment["FRAUD_EMF_SERVICE"] == EXAMPLE_VALUES["SERVICE_NAME"]
    bootstrap = resources["BootstrapTaskDefinition"]["Properties"]["ContainerDefinitions"][0]
    names = {e["Name"]: e["Value"] for e in bootstrap["Environment"]}
    assert float(names["FRAUD_EMF_INTERVAL_S"]) > 0
    assert names["FRAUD_EMF_SERVICE"] == {"Sub": "${ServiceName}-api"}  # = Service.Name


def _actions(role: dict[str, Any]) -> set[str]:
    actions: set[str] = set()
    for policy in role["Properties"].get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow"
            found = statement["Action"]
            actions |= {found} if isinstance(found, str) else set(found)
    return actions


def test_roles_are_least_privilege() -> None:
    resources = template()
    assert _actions(resources["ApiTaskRole"]) == {"s3:GetObject", "s3:ListBucket"}
    train = _actions(resources["TrainTaskRole"])
    assert train == {
        "s3:GetObject",
        "s3:PutObject",
        "s3:ListBucket",
        "secretsmanager:GetSecretValue",
    }
    # Only the training role may read the bundle-signing key: not the API's, not execution's.
    readers = [
        name
        for name, resource in resources.items()
        if resource["Type"] == "AWS::IAM::Role"
        and '"SigningKeySecret"' in json.dumps(resource["Properties"].get("Policies", []))
    ]
    assert readers == ["TrainTaskRole"]
    deploy = resources["GitHubActionsRole"]
    assert not any(a.startswith(("s3:", "iam:Create", "iam:Put")) for a in _actions(deploy))
    trust = deploy["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    conditions = trust["Condition"]["StringEquals"]
    assert conditions["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
    assert "environment:production" in json.dumps(conditions)


def test_service_rolls_back_and_scales() -> None:
    resources = template()
    service = resources["Service"]["Properties"]
    breaker = service["DeploymentConfiguration"]["DeploymentCircuitBreaker"]
    assert breaker == {"Enable": True, "Rollback": True}
    target_group = resources["TargetGroup"]["Properties"]
    assert target_group["HealthCheckPath"] == "/health/ready"
    (delay,) = [
        a["Value"]
        for a in target_group["TargetGroupAttributes"]
        if a["Key"] == "deregistration_delay.timeout_seconds"
    ]
    assert int(delay) <= 30  # well below the 300 s default
    policy = resources["CpuScalingPolicy"]["Properties"]
    assert policy["PolicyType"] == "TargetTrackingScaling"
    for name in ("ApiLogGroup", "TrainLogGroup"):
        assert resources[name]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_the_stack_creates_in_moto(moto_endpoint: str) -> None:
    session = boto3.session.Session(region_name=REGION)

    def client(name: str) -> Any:
        return session.client(name, endpoint_url=moto_endpoint)  # type: ignore[call-overload]

    ec2 = client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(
            VpcId=vpc, CidrBlock=f"10.20.{i}.0/24", AvailabilityZone=f"{REGION}{'ab'[i % 2]}"
        )["Subnet"]["SubnetId"]
        for i in range(4)
    ]
    name = f"fraud-{uuid.uuid4().hex[:6]}"
    cloudformation = client("cloudformation")
    cloudformation.create_stack(
        StackName=name,
        TemplateBody=TEMPLATE.read_text(),
        Capabilities=["CAPABILITY_NAMED_IAM"],
        Parameters=[
            {"ParameterKey": "ServiceName", "ParameterValue": name},
            {"ParameterKey": "VpcId", "ParameterValue": vpc},
            {"ParameterKey": "PublicSubnetIds", "ParameterValue": ",".join(subnets[:2])},
            {"ParameterKey": "PrivateSubnetIds", "ParameterValue": ",".join(subnets[2:])},
            {"ParameterKey": "ImageUri", "ParameterValue": "example/api:bootstrap"},
            {"ParameterKey": "GitHubRepository", "ParameterValue": "acme/fraud-scoring"},
            {
                "ParameterKey": "TrustedPublicKeys",
                "ParameterValue": "a2V5LW9uZS1hYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3g=",
            },
        ],
    )
    stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}

    s3 = client("s3")
    bucket = outputs["ArtifactBucketName"]
    # moto applies the bucket's encryption from a template, not its versioning or public access
    # block: those two are asserted on the template itself (test above) and by cfn-lint.
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    repositories = client("ecr").describe_repositories()["repositories"]
    assert {f"{name}-api", f"{name}-train"} <= {r["repositoryName"] for r in repositories}
    ecs = client("ecs")
    (service,) = ecs.describe_services(cluster=name, services=[f"{name}-api"])["services"]
    # moto keeps little of a templated service (no launch type, load balancer or circuit
    # breaker: the template tests assert those); what it keeps must be right.
    assert service["status"] == "ACTIVE"
    assert service["desiredCount"] == 2
    bootstrap = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])
    assert bootstrap["taskDefinition"]["family"] == f"{name}-api"
    assert bootstrap["taskDefinition"]["containerDefinitions"][0]["name"] == "api"
    groups = client("logs").describe_log_groups(logGroupNamePrefix=f"/ecs/{name}")["logGroups"]
    assert {g["retentionInDays"] for g in groups} == {30}
    iam = client("iam")
    assert (
        iam.get_role(RoleName=f"{name}-github-deploy")["Role"]["Arn"]
        == outputs["GitHubActionsRoleArn"]
    )

    topics = client("sns").list_topics()["Topics"]
    assert outputs["AlarmTopicArn"] in {t["TopicArn"] for t in topics}
    # moto's CloudFormation skips AWS::CloudWatch::Alarm, so each alarm goes through the
    # CloudWatch API itself: botocore checks its shape (metric math, extended statistics).
    cloudwatch = client("cloudwatch")
    known = {
        "ServiceName": name,
        "AlarmTopic": outputs["AlarmTopicArn"],
        "LatencyP99ThresholdSeconds": 0.25,
        "DriftPsiThreshold": 0.2,
        "LoadBalancer.LoadBalancerFullName": f"app/{name}/50dc6c495c0c9188",
        "TargetGroup.TargetGroupFullName": f"targetgroup/{name}/73e2d6bc24d8a067",
        "Service.Name": outputs["ServiceName"],
    }
    for resource in ALARMS:
        cloudwatch.put_metric_alarm(**resolve(template()[resource]["Properties"], known))
    alarms = cloudwatch.describe_alarms(AlarmNamePrefix=name)["MetricAlarms"]
    assert len(alarms) == len(ALARMS)
    assert {tuple(a["AlarmActions"]) for a in alarms} == {(outputs["AlarmTopicArn"],)}

    # CI's path: fill task-def.json from these outputs, register it. moto does not create
    # Secrets Manager secrets from templates, so their ARNs are stand-ins here.
    values = {placeholder: outputs.get(key, "") for placeholder, key in OUTPUTS.items()}
    values |= {
        "API_KEYS_SECRET_ARN": EXAMPLE_VALUES["API_KEYS_SECRET_ARN"],
        "ADMIN_API_KEYS_SECRET_ARN": EXAMPLE_VALUES["ADMIN_API_KEYS_SECRET_ARN"],
        "AWS_REGION": REGION,
    }
    registered = ecs.register_task_definition(**task_definition(values))["taskDefinition"]
    assert registered["executionRoleArn"] == outputs["ExecutionRoleArn"]


# --- .github/workflows -----------------------------------------------------------------------


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
