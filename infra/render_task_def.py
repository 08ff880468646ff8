"""Fill task-def.json's ${PLACEHOLDERS} from the CloudFormation stack's outputs.

    python infra/render_task_def.py --stack fraud-scoring --region eu-west-1 \
        --out task-def.rendered.json

Reads the outputs with the AWS CLI (or, for tests, `--outputs-json FILE` holding
`describe-stacks` output) and refuses to write a file with a placeholder left unfilled.
Standard library only: it runs in CI before anything is installed.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

# placeholder -> stack output key
OUTPUTS = {
    "EXECUTION_ROLE_ARN": "ExecutionRoleArn",
    "API_TASK_ROLE_ARN": "ApiTaskRoleArn",
    "API_REPOSITORY_URI": "ApiRepositoryUri",
    "STORE_URI": "StoreUri",
    "API_KEYS_SECRET_ARN": "ApiKeysSecretArn",
    "ADMIN_API_KEYS_SECRET_ARN": "AdminApiKeysSecretArn",
    "API_LOG_GROUP": "ApiLogGroupName",
    "TRUSTED_KEYS": "TrustedPublicKeys",
    "SERVICE_NAME": "ServiceName",
}
PLACEHOLDER = re.compile(r"\$\{([A-Z_]+)\}")


def render(template: str, values: dict[str, str]) -> str:
    missing = sorted({name for name in PLACEHOLDER.findall(template) if name not in values})
    if missing:
        raise SystemExit(f"render_task_def: no value for {', '.join(missing)}")
    rendered = PLACEHOLDER.sub(lambda m: values[m.group(1)], template)
    json.loads(rendered)  # still valid JSON
    return rendered


def stack_outputs(describe_stacks: dict[str, object]) -> dict[str, str]:
    stacks = describe_stacks["Stacks"]
    assert isinstance(stacks, list)
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stack", required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--template", type=Path, default=Path("task-def.json"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--outputs-json", type=Path, help="describe-stacks output (tests)")
    args = parser.parse_args()
    if args.outputs_json:
        described = json.loads(args.outputs_json.read_text())
    else:
        described = json.loads(
            subprocess.run(
                [
                    "aws",
                    "cloudformation",
                    "describe-stacks",
                    "--stack-name",
                    args.stack,
                    "--region",
                    args.region,
                    "--output",
                    "json",
                ],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
    outputs = stack_outputs(described)
    absent = sorted(key for key in OUTPUTS.values() if key not in outputs)
    if absent:
        sys.exit(f"render_task_def: stack {args.stack} has no output {', '.join(absent)}")
    values = {name: outputs[key] for name, key in OUTPUTS.items()} | {"AWS_REGION": args.region}
    args.out.write_text(render(args.template.read_text(), values))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
