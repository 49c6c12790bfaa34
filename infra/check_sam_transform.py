#!/usr/bin/env python3
"""Runs the SAM transform (aws-sam-translator, the code of CloudFormation's own
AWS::Serverless transform) on every template, offline, and fails on any error: what
`sam deploy` sends to CloudFormation must translate.

Why this remains beside cfn-lint: since 1.54.0 (the pin is 1.58.0) cfn-lint no longer runs
aws-sam-translator. It validates the SAM input against SAM schemas (properties, event types,
Globals) and that AWS::Serverless types come with the transform (E3038), but translates
nothing, so it passes templates the transform refuses, e.g. an EventInvokeConfig OnFailure of
Type Lambda without a Destination, or a DeploymentPreference without AutoPublishAlias
(infra/tests/test_sam_transform.py holds cfn-lint to that gap: when it closes, revisit this
file). What is kept, none of which cfn-lint checks:
  * the translation itself, as CloudFormation would run it (check_policies.py also reads the
    roles and policies it generates);
  * templates a StackSet deploys (dev-account.yaml) stay plain CloudFormation: StackSets run
    no transform, and no linter knows how a template is deployed;
  * every function is arm64 once the translator has merged the Globals.
Dropped as cfn-lint's: the check that nothing AWS::Serverless:: is left untranslated (a
Serverless type without the transform is cfn-lint's E3038; with it the translator translates
every resource or fails), and that the output names no transform.

Offline for certain: the translator's managed-policy lookup (the only AWS call it can make)
is given a loader that returns nothing, and every socket connection is refused while it
runs. The templates give their functions explicit roles, so no managed policy is needed.

The template is first packaged as `sam package` would (local CodeUri -> an S3 object), since
that is the form CloudFormation's transform receives.

Plain CloudFormation templates (no Transform) pass through unchanged.

usage: check_sam_transform.py [TEMPLATE ...]    (default: the three templates of infra/)
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Any, Iterator

sys.dont_write_bytecode = True  # no __pycache__ in the work tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import cfn  # noqa: E402

SAM = "AWS::Serverless-2016-10-31"

# StackSets do not run transforms: these must stay plain CloudFormation.
STACKSET_TEMPLATES = {"dev-account.yaml"}

# Placeholder values for parameters without a default (the transform needs none of them to
# be real; they only keep it from guessing).
PLACEHOLDERS = {
    "OrganizationId": "o-exampleorgid",
    "DevAccountIds": "111111111111",
    "SourceAccounts": "111111111111=dev-ml-artifacts-111111111111",
    "DevArtifactObjectArns": "arn:aws:s3:::dev-ml-artifacts-111111111111/*",
    "TestAccountId": "333333333333",
    "ProdAccountId": "444444444444",
    "StageTests": '[{"name":"t","content_type":"text/csv","payload":"1","max_latency_ms":1000}]',
    "CentralAccountId": "222222222222",
    "CentralArtifactKeyArn": "arn:aws:kms:us-east-1:222222222222:key/00000000-0000-0000-0000-000000000000",
    "Stage": "test",
}


class NoManagedPolicies:
    """Stands in for samtranslator's ManagedPolicyLoader, which would list IAM policies."""

    def load(self) -> dict[str, str]:
        return {}


def refuse(*_args: Any, **_kwargs: Any) -> None:
    raise OSError("check_sam_transform.py runs offline: no network")


@contextlib.contextmanager
def offline() -> Iterator[None]:
    """No socket may connect, and the region comes from here, not from a profile or IMDS."""
    saved = {k: os.environ.get(k) for k in ("AWS_DEFAULT_REGION", "AWS_EC2_METADATA_DISABLED")}
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    real_connect, real_create = socket.socket.connect, socket.create_connection
    socket.socket.connect = refuse  # type: ignore[method-assign]
    socket.create_connection = refuse  # type: ignore[assignment]
    try:
        yield
    finally:
        socket.socket.connect, socket.create_connection = real_connect, real_create  # type: ignore[method-assign]
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def package(template: dict[str, Any]) -> None:
    """What `sam build` + `sam package` do before the transform runs in CloudFormation: each
    function's local CodeUri becomes the S3 object of its built zip."""
    glob = (template.get("Globals") or {}).get("Function") or {}
    local = glob.pop("CodeUri", None)
    for name, resource in cfn.resources(template, "AWS::Serverless::Function"):
        props = resource.setdefault("Properties", {})
        uri = props.get("CodeUri", local)
        if isinstance(uri, str) and not uri.startswith("s3://"):
            props["CodeUri"] = f"s3://sam-artifacts-222222222222/{name}.zip"


# The translator warns about the usage metrics it keeps for itself (never sent anywhere here).
logging.getLogger("samtranslator.metrics").setLevel(logging.ERROR)


def transform(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.translator.transform import transform as sam_transform

    template = cfn.load(path)
    transforms = template.get("Transform")
    transforms = transforms if isinstance(transforms, list) else [transforms] if transforms else []
    if path.name in STACKSET_TEMPLATES and transforms:
        return None, f"{path.name} is deployed as a StackSet, which cannot run the transform(s) {transforms}"
    if SAM not in transforms:
        return template, None
    parameters = {
        **{name: spec.get("Default") for name, spec in (template.get("Parameters") or {}).items() if "Default" in spec},
        **{k: v for k, v in PLACEHOLDERS.items() if k in (template.get("Parameters") or {})},
        "AWS::Region": "us-east-1",
        "AWS::Partition": "aws",
        "AWS::AccountId": "222222222222",
    }
    package(template)
    try:
        with offline():
            output = sam_transform(template, parameters, NoManagedPolicies())
    except InvalidDocumentException as error:
        causes = "; ".join(str(cause) for cause in error.causes)
        return None, f"{path.name}: {causes}"
    except Exception as error:  # the translator's other failures are errors of the template too
        return None, f"{path.name}: {type(error).__name__}: {error}"
    return output, None


def not_arm64(output: dict[str, Any]) -> list[str]:
    """The functions of a translated template that are not arm64 alone."""
    return [
        name
        for name, resource in output.get("Resources", {}).items()
        if resource.get("Type") == "AWS::Lambda::Function" and (resource.get("Properties") or {}).get("Architectures") != ["arm64"]
    ]


def main(argv: list[str]) -> int:
    paths = [Path(p) for p in argv] or cfn.TEMPLATES
    failures = 0
    for path in paths:
        output, error = transform(path)
        if error or output is None:
            failures += 1
            print(f"sam transform: FAILED: {error}")
            continue
        resources = output.get("Resources", {})
        functions = [n for n, r in resources.items() if r["Type"] == "AWS::Lambda::Function"]
        wrong = not_arm64(output)
        if wrong:
            failures += 1
            print(f"sam transform: FAILED: {path.name}: not arm64 after the transform: {wrong}")
            continue
        print(f"sam transform: {path.name}: {len(resources)} resources, {len(functions)} functions")
    print(f"sam transform: {len(paths) - failures} of {len(paths)} template(s) translate")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
