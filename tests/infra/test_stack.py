"""infra/fraud-scoring.yaml: cfn-lint, what a review reads in it (bucket, alarms, roles,
rollback and scaling), and the whole stack created in moto's CloudFormation."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

import boto3

from infra.render_task_def import OUTPUTS
from service.observe.emf import NAMESPACE, EmfReporter
from service.observe.metrics import Metrics
from tests.infra.deployment import (
    BIN,
    EXAMPLE_VALUES,
    REGION,
    TEMPLATE,
    task_definition,
    template,
)


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
    "DroppedRowsAlarm": "FraudScoring DroppedRows (the decision log)",
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
    for name in ("ReloadFailuresAlarm", "DroppedRowsAlarm", "ScoreDriftAlarm", "InputDriftAlarm"):
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
    assert _actions(resources["ApiTaskRole"]) == {"s3:GetObject", "s3:ListBucket", "s3:PutObject"}
    # The API writes the decision log and nothing else.
    api_writes = [
        statement["Resource"]
        for policy in resources["ApiTaskRole"]["Properties"]["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
        if statement["Action"] == "s3:PutObject"
    ]
    assert api_writes == [{"Sub": "${ArtifactBucket.Arn}/fraud/captures/*"}]
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
