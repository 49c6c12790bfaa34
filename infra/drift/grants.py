"""Grants vs the code: every action granted to a role our code runs as (a function's role, a
role the functions or the CLI assume in another account) is an operation the Rust adapters of
shared/aws/src call, or one AWS evaluates for such a call or for Lambda running the function
(INDIRECT, each with its reason). A grant no code uses is drift: drop it.

Roles that AWS services run as (SageMaker's execution role, CodePipeline's, EventBridge's and
Step Functions') are the services' to use, not the code's, and are not checked here.

This is the union of the adapters: a grant that one function's code never reaches but
another's does passes. Which function needs which ledger actions is held role by role in
infra/tests/test_least_privilege.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import cfn
from drift.report import Report

# The adapter files of each service's SDK client.
ADAPTERS = {
    "codepipeline": ["codepipeline.rs"],
    "dynamodb": ["dynamodb.rs", "dynamodb/audit.rs"],
    "ecr": ["ecr.rs"],
    "events": ["eventbridge.rs"],
    "s3": ["s3.rs"],
    "sagemaker": ["sagemaker.rs", "endpoints.rs"],
    "sns": ["sns.rs"],
    "sts": ["sts.rs"],
}

# action -> (what in the adapters calls for it, why). The first is a regular expression searched
# in every adapter; "lambda runtime" and "on-failure destination" stand for Lambda itself.
INDIRECT: dict[str, tuple[str, str]] = {
    "s3:getobjecttagging": (r"\.copy_object\(\)", "CopyObject copies the source object's tags"),
    "s3:putobjecttagging": (r"\.copy_object\(\)", "CopyObject writes the copied tags"),
    "s3:listbucket": (r"\.head_object\(\)", "a HEAD of a missing key answers 404 only to a caller that may list the bucket"),
    "s3:listbucketmultipartuploads": (r"\.list_multipart_uploads\(\)", "ListMultipartUploads is authorized as this action"),
    "kms:decrypt": (r"\.(get_object|upload_part_copy|complete_multipart_upload|head_object)\(\)", "reading SSE-KMS objects, multipart uploads under SSE-KMS, a HEAD's checksum"),
    "kms:generatedatakey": (r"\.(put_object|create_multipart_upload|copy_object)\(\)", "writing SSE-KMS objects"),
    "sts:assumerole": (r"AssumeRoleProvider", "the sessions in other accounts"),
    "iam:passrole": (r"\.execution_role_arn\(", "CreateModel hands the execution role to SageMaker"),
    "cloudwatch:describealarms": (r"AutoRollbackConfig", "UpdateEndpoint with auto-rollback alarms: SageMaker reads them"),
    "logs:createlogstream": ("lambda runtime", "Lambda writes the function's logs with its role"),
    "logs:putlogevents": ("lambda runtime", "Lambda writes the function's logs with its role"),
    "sqs:sendmessage": ("on-failure destination", "Lambda sends a failed event to the function's destination with its role"),
    "s3:putobjectretention": (r"\.object_lock_retain_until_date\(", "a PutObject that sets a retention date is authorized as this action too"),
    "s3:getobjectversion": (r"\.version_id\(", "a GetObject of one version is authorized as this action"),
}

# Roles trusted by these are run by AWS services, not by our code.
SERVICE_RUN = {"sagemaker.amazonaws.com", "codepipeline.amazonaws.com", "events.amazonaws.com", "states.amazonaws.com"}

# Grants the code does not call for but people do, by hand, under a role the CLI assumes.
BY_HAND: dict[tuple[str, str], str] = {
    ("OperatorRollbackRole", "sagemaker:describeendpointconfig"): "an operator checks which config a rollback would point at",
}


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def adapter_texts(root: Path) -> dict[str, str]:
    folder = root / "shared" / "aws" / "src"
    return {str(path.relative_to(folder)): path.read_text() for path in sorted(folder.glob("**/*.rs"))}


def code_runs_as(role: dict[str, Any]) -> bool:
    """A role our code runs as: a function's (Lambda) or one assumed by a role of ours or a
    person (an AWS principal); not one an AWS service runs as."""
    trust = ((role.get("Properties") or {}).get("AssumeRolePolicyDocument") or {}).get("Statement", [])
    services = {s for statement in cfn.as_list(trust) if isinstance(statement, dict) for s in cfn.as_list((statement.get("Principal") or {}).get("Service", []))}
    return not (services & SERVICE_RUN)


def used(action: str, texts: dict[str, str], is_function: bool) -> str | None:
    """Why the code needs `action`, or None."""
    service, _, name = action.partition(":")
    for file in ADAPTERS.get(service.lower(), []):
        if re.search(rf"\.{snake(name)}\(\)", texts.get(file, "")):
            return f"{file} calls {snake(name)}"
    indirect = INDIRECT.get(action.lower())
    if indirect is None:
        return None
    needs, why = indirect
    if needs in ("lambda runtime", "on-failure destination"):
        return why if is_function else None
    return why if any(re.search(needs, text) for text in texts.values()) else None


def check_grants(templates: dict[str, dict[str, Any]], report: Report, root: Path = cfn.ROOT) -> None:
    texts = adapter_texts(root)
    checked = 0
    for file, template in templates.items():
        for logical, role in cfn.resources(template, "AWS::IAM::Role"):
            if not code_runs_as(role):
                continue
            trust = json_text(((role.get("Properties") or {}).get("AssumeRolePolicyDocument")))
            is_function = "lambda.amazonaws.com" in trust
            for policy in cfn.as_list((role.get("Properties") or {}).get("Policies", [])):
                for statement in cfn.as_list(((policy.get("PolicyDocument") or {}).get("Statement")) or []):
                    if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
                        continue
                    for action in cfn.as_list(statement.get("Action", [])):
                        checked += 1
                        if (logical, str(action).lower()) in BY_HAND or used(str(action), texts, is_function):
                            continue
                        report.error(
                            f"{file} {logical} [{statement.get('Sid', '')}]: {action} is granted but no adapter of shared/aws/src calls for it: "
                            "drop it (or say in infra/drift/grants.py what needs it)"
                        )
    report.expect(checked > 50, f"only {checked} granted actions found to check against the code")


def json_text(value: Any) -> str:
    import json

    return json.dumps(value)
