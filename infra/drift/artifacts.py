"""The artifact buckets: a central reader of the artifact bucket may list it (S3 answers a
missing key with 404 only then), and the dev ArtifactKeyPattern admits the sample events'
artifacts and is the one the samconfig example's DevArtifactObjectArns use."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path
from typing import Any

import cfn
from drift.report import Report


def statements_of(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        statement
        for policy in cfn.as_list((role.get("Properties") or {}).get("Policies", []))
        for statement in cfn.as_list(((policy.get("PolicyDocument") or {}).get("Statement")) or [])
        if isinstance(statement, dict) and statement.get("Effect") == "Allow"
    ]


def check_missing_keys_are_404(central: dict[str, Any], report: Report) -> None:
    """A role that may GetObject (so HeadObject) in the artifact bucket may also list it: S3
    answers a HEAD of a missing key with 404 only then (403 otherwise, which the code treats
    as terminal)."""
    bucket_arn = {"Fn::GetAtt": "ArtifactBucket.Arn"}
    for logical, role in cfn.resources(central, "AWS::IAM::Role"):
        reads = lists = False
        for statement in statements_of(role):
            actions = {a.lower() for a in cfn.as_list(statement.get("Action", [])) if isinstance(a, str)}
            for resource in cfn.as_list(statement.get("Resource", [])):
                text = cfn.sub_text(resource) or ""
                if "s3:getobject" in actions and text.startswith("${ArtifactBucket.Arn}/"):
                    reads = True
                if "s3:listbucket" in actions and (resource == bucket_arn or resource == {"Fn::GetAtt": ["ArtifactBucket", "Arn"]}):
                    lists = True
        if reads and not lists:
            report.error(f"{logical} may HEAD artifact bucket objects but not s3:ListBucket the bucket: a missing key answers 403, not 404")


def check_dev_artifact_keys(templates: dict[str, dict[str, Any]], samconfig: Path, events: Path, report: Report) -> None:
    """The key pattern the dev bucket policy admits covers the artifacts the sample (and local)
    model versions name, and the central role's DevArtifactObjectArns in the example use it."""
    pattern = cfn.parameter_defaults(templates["dev-account.yaml"]).get("ArtifactKeyPattern") or ""
    uris = sorted(
        {
            uri
            for path in sorted(events.glob("*.json"))
            for uri in re.findall(r"s3://(dev-ml-artifacts-[0-9]{12})/([^\"]+)", path.read_text())
        }
    )
    report.expect(bool(uris), "no dev artifact (s3://dev-ml-artifacts-…) in events/*.json to check ArtifactKeyPattern against")
    for bucket, key in uris:
        # IAM's * matches any characters, slashes too, as fnmatch's does.
        report.expect(
            fnmatch.fnmatchcase(key, pattern),
            f"dev ArtifactKeyPattern {pattern!r} does not admit s3://{bucket}/{key} (events/*.json): the central role could not copy it",
        )
    config = tomllib.loads(samconfig.read_text())
    arns = (((config.get("central") or {}).get("deploy") or {}).get("parameters") or {}).get("parameter_overrides", {}).get("DevArtifactObjectArns", [])
    for arn in arns:
        report.expect(
            arn.endswith("/" + pattern),
            f"{samconfig.name} DevArtifactObjectArns {arn!r} is not the dev stack's ArtifactKeyPattern {pattern!r} in its bucket",
        )
