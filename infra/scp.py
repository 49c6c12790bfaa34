"""The service control policies of infra/guardrails.yaml as Organizations would hold them, and
whom they deny what: the cross-check of infra/check_policies.py against the roles of the
central and target templates.

Templates are rendered with sample values (the local accounts of the design, sample role
patterns for the parameters without a default): only the shape of the ARNs matters here. IAM's
`*` and `?` wildcards are fnmatch's; two patterns overlap when either matches the other, which
is exact for the ARNs these templates write (a fixed prefix, then at most one trailing `*`).
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass
from typing import Any, Iterator

import cfn

CENTRAL, TEST, PROD = "222222222222", "333333333333", "444444444444"
PSEUDO = {"AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::URLSuffix": "amazonaws.com"}

# Organizations refuses an SCP larger than this (bytes of the policy as stored).
MAX_SCP_BYTES = 5120

# Which accounts each policy's TargetIds parameter stands for.
TARGETS = {"CentralTargetIds": ("central",), "StageTargetIds": ("test", "prod")}

# The guardrails' parameters without a default, as an installation might set them: role
# patterns as long as IAM Identity Center's, one per account for the platform.
GUARDRAIL_SAMPLES: dict[str, Any] = {
    "CentralAccountId": CENTRAL,
    "TestAccountId": TEST,
    "ProdAccountId": PROD,
    "CentralTargetIds": [CENTRAL],
    "StageTargetIds": [TEST, PROD],
    "GovernanceRoleArns": [f"arn:aws:iam::{CENTRAL}:role/aws-reserved/sso.amazonaws.com/*/AWSReservedSSO_ModelPromotionProdApprover_*"],
    "PlatformRoleArns": [
        f"arn:aws:iam::{account}:role/aws-reserved/sso.amazonaws.com/*/AWSReservedSSO_PlatformEngineer_*" for account in (CENTRAL, TEST, PROD)
    ],
}

# The other templates' parameters without a default, for rendering their roles.
CENTRAL_SAMPLES: dict[str, Any] = {
    "AWS::AccountId": CENTRAL,
    "TestAccountId": TEST,
    "ProdAccountId": PROD,
    "OrganizationId": "o-abcdefghij",
    "DevAccountIds": ["111111111111"],
    "DevArtifactObjectArns": ["arn:aws:s3:::dev-ml-artifacts-111111111111/*/output/*"],
}
TARGET_SAMPLES: dict[str, Any] = {
    "CentralAccountId": CENTRAL,
    "CentralArtifactKeyArn": f"arn:aws:kms:us-east-1:{CENTRAL}:key/00000000-0000-0000-0000-000000000000",
    "OperatorRoleArns": [f"arn:aws:iam::{CENTRAL}:role/operators"],
}


def parameters(template: dict[str, Any], samples: dict[str, Any], **pseudo: Any) -> dict[str, Any]:
    """Every parameter's value: the sample, else the default (a list for a list type)."""
    values: dict[str, Any] = dict(PSEUDO)
    for name, spec in (template.get("Parameters") or {}).items():
        if "Default" in spec:
            default = str(spec["Default"])
            values[name] = default.split(",") if "List" in str(spec.get("Type")) else default
    values.update(samples)
    values.update(pseudo)
    return values


def render(value: Any, values: dict[str, Any], template: dict[str, Any]) -> Any:
    """Resolves Ref, Fn::Sub, Fn::Join, Fn::Split, Fn::Select, Fn::GetAtt and Fn::If (its first
    branch) with `values`; a GetAtt or Ref of a resource becomes its ARN or name where the
    resource says it (functions, roles, buckets), else a `<Logical.Attribute>` placeholder."""
    if isinstance(value, list):
        return [render(v, values, template) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Ref"}:
        name = value["Ref"]
        if name in values:
            return values[name]
        return resource_attribute(template, name, "Ref", values)
    if set(value) == {"Fn::GetAtt"}:
        target = value["Fn::GetAtt"]
        logical, attribute = target.split(".", 1) if isinstance(target, str) else target
        return resource_attribute(template, logical, attribute, values)
    if set(value) == {"Fn::Sub"}:
        sub = value["Fn::Sub"]
        text, local = (sub, {}) if isinstance(sub, str) else (sub[0], sub[1])
        names = dict(values)
        names.update({k: render(v, values, template) for k, v in local.items()})
        return re.sub(r"\$\{([^}!]+)\}", lambda m: str(sub_value(m.group(1), names, template)), text).replace("${!", "${")
    if set(value) == {"Fn::Join"}:
        separator, items = value["Fn::Join"]
        return separator.join(str(item) for item in flatten(render(items, values, template)))
    if set(value) == {"Fn::Split"}:
        separator, text = value["Fn::Split"]
        return str(render(text, values, template)).split(separator)
    if set(value) == {"Fn::Select"}:
        index, items = value["Fn::Select"]
        return flatten(render(items, values, template))[int(index)]
    if set(value) == {"Fn::If"}:
        return render(value["Fn::If"][1], values, template)
    return {k: render(v, values, template) for k, v in value.items()}


def sub_value(name: str, names: dict[str, Any], template: dict[str, Any]) -> Any:
    """A `${Name}` or `${Logical.Attribute}` of an Fn::Sub."""
    if name in names:
        return names[name]
    logical, _, attribute = name.partition(".")
    return resource_attribute(template, logical, attribute or "Ref", names)


def resource_attribute(template: dict[str, Any], logical: str, attribute: str, values: dict[str, Any]) -> str:
    resource = (template.get("Resources") or {}).get(logical) or {}
    kind, props = resource.get("Type"), resource.get("Properties") or {}
    region, account = values.get("AWS::Region", "us-east-1"), values.get("AWS::AccountId", CENTRAL)
    if kind in ("AWS::Serverless::Function", "AWS::Lambda::Function") and "FunctionName" in props:
        name = render(props["FunctionName"], values, template)
        return name if attribute == "Ref" else f"arn:aws:lambda:{region}:{account}:function:{name}"
    if kind == "AWS::IAM::Role" and "RoleName" in props:
        name = render(props["RoleName"], values, template)
        return name if attribute == "Ref" else f"arn:aws:iam::{account}:role/{name}"
    if kind == "AWS::S3::Bucket" and "BucketName" in props:
        name = render(props["BucketName"], values, template)
        return name if attribute == "Ref" else f"arn:aws:s3:::{name}"
    if kind == "AWS::CodePipeline::Pipeline" and attribute == "Ref" and "Name" in props:
        return render(props["Name"], values, template)
    return f"<{logical}.{attribute}>"


def flatten(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [item for v in value for item in flatten(v)]
    return [value]


@dataclass
class Grant:
    """One Allow statement of a role, rendered."""

    role: str  # logical id
    arn: str
    account: str
    sid: str
    actions: list[str]
    resources: list[str]


def role_grants(template: dict[str, Any], values: dict[str, Any], account: str) -> Iterator[Grant]:
    values = {**values, "AWS::AccountId": account}
    for logical, resource in cfn.resources(template, "AWS::IAM::Role"):
        props = resource.get("Properties") or {}
        arn = f"arn:aws:iam::{account}:role/{render(props.get('RoleName', logical), values, template)}"
        for policy in cfn.as_list(props.get("Policies", [])):
            for statement in cfn.as_list(((policy.get("PolicyDocument") or {}).get("Statement")) or []):
                if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
                    continue
                resources = [str(r) for item in cfn.as_list(statement.get("Resource", [])) for r in flatten(render(item, values, template))]
                actions = [a for a in cfn.as_list(statement.get("Action", [])) if isinstance(a, str)]
                yield Grant(logical, arn, account, statement.get("Sid", ""), actions, resources)


def service_grants(central: dict[str, Any], target: dict[str, Any]) -> dict[str, list[Grant]]:
    """The roles' grants in each account the guardrails target."""
    c = parameters(central, CENTRAL_SAMPLES)
    grants = {"central": list(role_grants(central, c, CENTRAL))}
    for stage, account in (("test", TEST), ("prod", PROD)):
        t = parameters(target, TARGET_SAMPLES, Stage=stage)
        grants[stage] = list(role_grants(target, t, account))
    return grants


@dataclass
class Policy:
    """One SCP of the guardrails template, rendered."""

    logical: str
    accounts: tuple[str, ...]
    content: dict[str, Any]


def policies(guardrails: dict[str, Any], samples: dict[str, Any] | None = None) -> Iterator[Policy]:
    values = parameters(guardrails, GUARDRAIL_SAMPLES if samples is None else samples)
    for logical, resource in cfn.resources(guardrails, "AWS::Organizations::Policy"):
        props = resource.get("Properties") or {}
        if props.get("Type") != "SERVICE_CONTROL_POLICY":
            continue
        targets = props.get("TargetIds")
        accounts = TARGETS.get(targets.get("Ref"), ()) if isinstance(targets, dict) else ()
        yield Policy(logical, accounts, render(props.get("Content"), values, guardrails))


def exceptions(statement: dict[str, Any]) -> list[str]:
    """The principal ARN patterns a Deny statement spares (ArnNotLike/ArnNotEquals aws:PrincipalArn)."""
    spared: list[str] = []
    for operator, tests in (statement.get("Condition") or {}).items():
        if operator in ("ArnNotLike", "ArnNotEquals", "StringNotLike", "StringNotEquals"):
            for key, patterns in (tests or {}).items():
                if key.lower() == "aws:principalarn":
                    spared.extend(str(p) for p in flatten(patterns))
    return spared


def action_matches(pattern: str, action: str) -> bool:
    return fnmatch.fnmatchcase(action.lower(), pattern.lower()) or fnmatch.fnmatchcase(pattern.lower(), action.lower())


def overlaps(a: str, b: str) -> bool:
    return fnmatch.fnmatchcase(a, b) or fnmatch.fnmatchcase(b, a)


def denies(statement: dict[str, Any], principal: str, action: str, resource: str) -> bool:
    """Whether the Deny statement refuses `principal` the call (a concrete request)."""
    if statement.get("Effect") != "Deny":
        return False
    if not any(action_matches(a, action) for a in flatten(statement.get("Action", []))):
        return False
    if not any(fnmatch.fnmatchcase(resource, r) for r in flatten(statement.get("Resource", []))):
        return False
    return not any(fnmatch.fnmatchcase(principal, p) for p in exceptions(statement))


def denied_grants(policy: Policy, grants: dict[str, list[Grant]]) -> Iterator[str]:
    """Each grant of a service role in the policy's accounts that one of its statements denies."""
    for statement in flatten(policy.content.get("Statement", [])):
        if not isinstance(statement, dict) or statement.get("Effect") != "Deny":
            continue
        spared = exceptions(statement)
        denied_actions = [str(a) for a in flatten(statement.get("Action", []))]
        denied_resources = [str(r) for r in flatten(statement.get("Resource", []))]
        for account in policy.accounts:
            for grant in grants.get(account, []):
                if any(fnmatch.fnmatchcase(grant.arn, p) for p in spared):
                    continue
                actions = [a for a in grant.actions if any(action_matches(d, a) for d in denied_actions)]
                resources = [r for r in grant.resources if any(overlaps(d, r) for d in denied_resources)]
                if actions and resources:
                    yield (
                        f"{policy.logical} [{statement.get('Sid', '')}]: denies {grant.arn} ({grant.role} [{grant.sid}], {account}) "
                        f"{', '.join(actions)} on {', '.join(resources)}, which its policy grants"
                    )


def size(policy: Policy) -> int:
    """The policy's size as Organizations counts it: its JSON without white space."""
    return len(json.dumps(policy.content, separators=(",", ":")).encode())


def guardrail_findings(guardrails: dict[str, Any], central: dict[str, Any], target: dict[str, Any]) -> list[str]:
    """What the guardrails take from the service's own roles, what they cannot be checked
    against, and the policies Organizations would refuse as too large."""
    findings = []
    grants = service_grants(central, target)
    for policy in policies(guardrails):
        if not policy.accounts:
            findings.append(f"{policy.logical}: TargetIds is none of {', '.join(TARGETS)}: cannot tell which accounts' roles it reaches")
        findings.extend(denied_grants(policy, grants))
        if size(policy) > MAX_SCP_BYTES:
            findings.append(f"{policy.logical}: {size(policy)} bytes with the sample parameters, over the {MAX_SCP_BYTES} Organizations takes")
    return findings
