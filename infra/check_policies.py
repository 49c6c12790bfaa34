#!/usr/bin/env python3
"""Least-privilege check of every policy in the templates: IAM role and managed policies,
trust policies, bucket, key, queue, topic and event bus policies, Lambda permissions.

The local emulator enforces no policy, so this static check is what stands between a
template and an over-broad grant. It fails (exit 1) on any Allow statement that

  * grants `*`, `service:*` or any other wildcard action, or uses NotAction / NotResource;
  * names an action IAM does not know (cfn-lint's action table), or an action that is not a
    literal string;
  * has `Resource: "*"` (or an ARN whose resource part is `*`) for an action that can be
    narrowed, i.e. one missing from STAR_ONLY_ACTIONS below; a key policy's `*` is its key;
  * trusts another account other than through an exact role ARN: in a trust policy the
    principal itself must be that role; in a resource policy an account root principal must
    carry an `aws:PrincipalArn` condition naming exact roles, `*` must be narrowed to the
    organization (`aws:PrincipalOrgID`/`aws:PrincipalOrgPaths`) or a source (`aws:SourceArn`/
    `aws:SourceAccount`), and a service principal must name its source (confused deputy).
    One exception: ECR replication acts as the source account itself, with no role of it to
    name, so a registry policy may admit accounts for REPLICATION_ACTIONS only, on
    repositories under a prefix (never `repository/*`).

Deny statements are not checked for breadth: a wide Deny (e.g. `s3:*` without TLS) only
takes access away.

usage: check_policies.py [TEMPLATE ...]    (default: the three templates of infra/)
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

sys.dont_write_bytecode = True  # no __pycache__ in the work tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import cfn  # noqa: E402

# Actions that take no resource ARN at all, so `Resource: "*"` is the only form IAM accepts.
# Each entry says why it is here; add one only with that reason.
STAR_ONLY_ACTIONS = {
    # A CodePipeline job result names a job id, not a resource.
    "codepipeline:putjobsuccessresult",
    "codepipeline:putjobfailureresult",
    # The registry login token is account-wide; image pulls themselves are per repository.
    "ecr:getauthorizationtoken",
    # Metric namespaces are not resources; narrow with the cloudwatch:namespace condition.
    "cloudwatch:putmetricdata",
    # X-Ray segments and telemetry have no resource (for functions with tracing enabled).
    "xray:puttracesegments",
    "xray:puttelemetryrecords",
}

# What ECR cross-account replication does in the destination registry, as the source account.
REPLICATION_ACTIONS = {"ecr:createrepository", "ecr:replicateimage"}

# A literal or Fn::Sub string that is exactly one IAM role ARN, no wildcard.
ROLE_ARN = re.compile(
    r"^arn:(aws[a-z-]*|\$\{AWS::Partition\}):iam::([0-9]{12}|\$\{[A-Za-z0-9:]+\}):role/[\w+=,.@/${}:-]+$"
)
ORG_KEYS = {"aws:principalorgid", "aws:principalorgpaths"}
SOURCE_KEYS = {"aws:sourcearn", "aws:sourceaccount", "aws:sourceowner"}

# Which document of which resource type is which kind of policy.
IDENTITY, TRUST, RESOURCE, KEY = "identity", "trust", "resource", "key"


@dataclass
class Finding:
    template: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.template}: {self.where}: {self.message}"


def known_actions() -> dict[str, dict[str, Any]]:
    """service -> {action (lower case) -> spec} from cfn-lint's table of IAM actions."""
    from importlib.resources import files

    raw = files("cfnlint.data.AdditionalSpecs").joinpath("Policies.json").read_text()
    return {service: spec.get("Actions", {}) for service, spec in json.loads(raw).items()}


ACTIONS = known_actions()


def documents(template: dict[str, Any]) -> Iterator[tuple[str, str, Any]]:
    """(where, kind, policy document) for every policy of the template."""
    for name, res in cfn.resources(template):
        kind, props = res.get("Type"), res.get("Properties") or {}
        if kind in ("AWS::IAM::Role", "AWS::IAM::User", "AWS::IAM::Group") and props.get("ManagedPolicyArns"):
            # Managed policies (AWS's are often broad) are not in the template to be checked.
            yield f"{name} ManagedPolicyArns {json.dumps(props['ManagedPolicyArns'])}", "opaque", None
        if kind == "AWS::IAM::Role":
            yield f"{name} trust", TRUST, props.get("AssumeRolePolicyDocument")
            for policy in cfn.as_list(props.get("Policies", [])):
                yield f"{name} policy {policy.get('PolicyName')}", IDENTITY, policy.get("PolicyDocument")
        elif kind in ("AWS::IAM::User", "AWS::IAM::Group"):
            for policy in cfn.as_list(props.get("Policies", [])):
                yield f"{name} policy {policy.get('PolicyName')}", IDENTITY, policy.get("PolicyDocument")
        elif kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::RolePolicy"):
            yield name, IDENTITY, props.get("PolicyDocument")
        elif kind in ("AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy"):
            yield name, RESOURCE, props.get("PolicyDocument")
        elif kind == "AWS::KMS::Key":
            yield name, KEY, props.get("KeyPolicy")
        elif kind == "AWS::Events::EventBusPolicy":
            if "Statement" in props:
                yield name, RESOURCE, {"Statement": props["Statement"]}
        elif kind == "AWS::Events::EventBus" and "Policy" in props:
            yield name, RESOURCE, props["Policy"]
        elif kind == "AWS::SageMaker::ModelPackageGroup" and "ModelPackageGroupPolicy" in props:
            yield name, RESOURCE, props["ModelPackageGroupPolicy"]
        elif kind == "AWS::ECR::RegistryPolicy":
            yield name, RESOURCE, props.get("PolicyText")
        elif kind == "AWS::ECR::Repository" and "RepositoryPolicyText" in props:
            yield name, RESOURCE, props["RepositoryPolicyText"]
        elif kind == "AWS::ECR::RepositoryCreationTemplate" and "RepositoryPolicy" in props:
            # A JSON string, written with Fn::Sub: checked as the sample parameters make it.
            values = {**cfn.parameter_defaults(template), **SAMPLE_VALUES}
            yield name, RESOURCE, str(cfn.substitute(props["RepositoryPolicy"], values))
        elif kind == "AWS::StepFunctions::StateMachine":
            for state, document in state_machine_policies(template, props):
                yield f"{name} state {state}", RESOURCE, document
        elif kind == "AWS::Serverless::Function":
            for policy in cfn.as_list(props.get("Policies", [])):
                if isinstance(policy, dict) and "Statement" in policy:
                    yield f"{name} inline policy", IDENTITY, policy
                else:
                    # A managed policy name or SAM policy template: its statements are not in
                    # the template, so they cannot be checked. Use an explicit role instead.
                    yield f"{name} policy {json.dumps(policy)}", "opaque", None


# Placeholder values for a state machine's substitutions that are parameters without a
# default, and the event it is evaluated on: only the shape of the policy matters here.
SAMPLE_VALUES = {
    "AWS::Partition": "aws",
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "222222222222",
    "TestAccountId": "333333333333",
    "ProdAccountId": "444444444444",
}
SAMPLE_INPUT = {"detail": {"ModelPackageGroupName": "example-group-111111111111"}}


def state_machine_policies(template: dict[str, Any], props: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """Policies a state machine writes with an SDK task (an argument named *Policy), built
    by evaluating its JSONata on a sample event."""
    definition = props.get("Definition")
    if not isinstance(definition, dict):
        return
    values = {**cfn.parameter_defaults(template), **SAMPLE_VALUES}
    substitutions = {k: str(cfn.substitute(v, values)) for k, v in (props.get("DefinitionSubstitutions") or {}).items()}
    for state_name, state in (definition.get("States") or {}).items():
        if not str(state.get("Resource", "")).startswith("arn:aws:states:::aws-sdk:"):
            continue
        for argument, expression in (state.get("Arguments") or state.get("Parameters") or {}).items():
            if not argument.rstrip(".$").endswith("Policy"):
                continue
            text = re.sub(r"\$\{(\w+)\}", lambda m: substitutions.get(m.group(1), m.group(0)), str(expression)).strip()
            if not (text.startswith("{%") and text.endswith("%}")):
                yield state_name, text
                continue
            import jsonata

            query = jsonata.Jsonata(text[2:-2])
            frame = query.create_frame()
            frame.bind("states", {"input": SAMPLE_INPUT})
            yield state_name, query.evaluate(None, frame)


def statements(document: Any) -> Iterator[dict[str, Any]]:
    if isinstance(document, str):
        document = json.loads(document)
    if not isinstance(document, dict):
        return
    for statement in cfn.as_list(document.get("Statement", [])):
        if isinstance(statement, dict):
            yield statement


def condition_keys(statement: dict[str, Any]) -> dict[str, list[Any]]:
    """condition key (lower case) -> the values it is compared with, across operators."""
    keys: dict[str, list[Any]] = {}
    for operator, tests in (statement.get("Condition") or {}).items():
        for key, values in (tests or {}).items():
            keys.setdefault(key.lower(), []).extend(cfn.as_list(values))
            keys[key.lower()].append(("operator", operator))
    return keys


def principals(statement: dict[str, Any]) -> list[tuple[str, Any]]:
    principal = statement.get("Principal")
    if principal is None:
        return []
    if principal == "*":
        return [("AWS", "*")]
    out = []
    for kind, values in principal.items():
        for value in cfn.as_list(values):
            out.append((kind, value))
    return out


def is_exact_role(value: Any, template: dict[str, Any]) -> bool:
    text = cfn.sub_text(value)
    if text is not None:
        return bool(ROLE_ARN.match(text)) and "*" not in text
    if isinstance(value, dict) and set(value) == {"Fn::GetAtt"}:
        target = value["Fn::GetAtt"]
        target = target.split(".") if isinstance(target, str) else target
        resource = (template.get("Resources") or {}).get(target[0], {})
        return resource.get("Type") == "AWS::IAM::Role" and target[1] == "Arn"
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return parameter_holds_roles_only(template, value["Ref"])
    return False


def parameter_holds_roles_only(template: dict[str, Any], name: str) -> bool:
    """A parameter used as a principal must be constrained to exact role ARNs: its
    AllowedPattern (applied to each element of a list) must reject every over-broad form."""
    pattern = ((template.get("Parameters") or {}).get(name) or {}).get("AllowedPattern")
    if not pattern:
        return False
    rx = re.compile(pattern)
    broad = ["*", "123456789012", "arn:aws:iam::123456789012:root", "arn:aws:iam::*:role/x",
             "arn:aws:iam::123456789012:role/*", "arn:aws:iam::123456789012:user/x"]
    return rx.fullmatch("arn:aws:iam::123456789012:role/ops") is not None and not any(rx.fullmatch(b) for b in broad)


def is_own_account_root(value: Any) -> bool:
    text = cfn.sub_text(value) or ""
    return bool(re.fullmatch(r"arn:(aws[a-z-]*|\$\{AWS::Partition\}):iam::\$\{AWS::AccountId\}:root", text))


def resource_is_star(value: Any) -> bool:
    text = cfn.sub_text(value)
    if text is None:
        return False
    if text == "*":
        return True
    parts = re.sub(r"\$\{[^}]*\}", "x", text).split(":", 5)
    return len(parts) == 6 and parts[0] == "arn" and parts[5] == "*"


def check_statement(template: dict[str, Any], where: str, kind: str, statement: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    sid = statement.get("Sid")
    if sid:
        where = f"{where} [{sid}]"
    if statement.get("Effect") != "Allow":
        return []
    if "NotAction" in statement:
        problems.append("Allow with NotAction grants everything it does not list")
    if "NotResource" in statement:
        problems.append("Allow with NotResource grants everything it does not list")
    if "NotPrincipal" in statement:
        problems.append("Allow with NotPrincipal trusts everyone it does not list")

    actions = cfn.as_list(statement.get("Action", []))
    for action in actions:
        if not isinstance(action, str):
            problems.append(f"action {json.dumps(action)} is not a literal, so it cannot be checked")
            continue
        if action == "*":
            problems.append('Action "*" grants every action of every service')
            continue
        service, _, name = action.partition(":")
        if "*" in name or "?" in name:
            problems.append(f"wildcard action {action}: list the actions")
            continue
        if service.lower() not in ACTIONS or name.lower() not in ACTIONS[service.lower()]:
            problems.append(f"unknown action {action}")

    if kind in (IDENTITY, RESOURCE):
        for resource in cfn.as_list(statement.get("Resource", [])):
            if resource_is_star(resource):
                broad = sorted(a for a in actions if isinstance(a, str) and a.lower() not in STAR_ONLY_ACTIONS)
                if broad:
                    problems.append(
                        f"Resource {cfn.sub_text(resource)!r} for {', '.join(broad)}, which can name a narrower resource"
                    )

    conditions = condition_keys(statement)
    for principal_kind, value in principals(statement):
        if principal_kind == "Service":
            if kind == RESOURCE and not (SOURCE_KEYS & set(conditions)):
                problems.append(f"service principal {value} without aws:SourceArn/aws:SourceAccount (confused deputy)")
            continue
        if principal_kind != "AWS":
            problems.append(f"{principal_kind} principal {json.dumps(value)}: only roles and services are trusted")
            continue
        if kind == TRUST:
            if not is_exact_role(value, template):
                problems.append(f"trust of {json.dumps(value)}: a trust policy must name an exact role ARN")
            continue
        if value == "*":
            if not ((ORG_KEYS | SOURCE_KEYS) & set(conditions)) and not exact_principal_arns(conditions):
                problems.append('Principal "*" not narrowed to the organization, a source, or exact roles')
            continue
        if is_exact_role(value, template) or is_own_account_root(value):
            continue
        if kind == RESOURCE and replication_only(statement):
            continue
        # Another account's root (or bare id): only with the exact roles in aws:PrincipalArn.
        if not exact_principal_arns(conditions):
            problems.append(
                f"principal {json.dumps(value)} trusts a whole account: name the roles in an aws:PrincipalArn condition"
            )
    return [f"{where}: {p}" for p in problems]


def replication_only(statement: dict[str, Any]) -> bool:
    """Only ECR replication's actions, on repositories under a prefix."""
    actions = [a.lower() for a in cfn.as_list(statement.get("Action", [])) if isinstance(a, str)]
    resources = [cfn.sub_text(r) or "" for r in cfn.as_list(statement.get("Resource", []))]
    narrowed = [re.search(r":repository/[a-z0-9]", r) is not None for r in resources]
    return bool(actions) and set(actions) <= REPLICATION_ACTIONS and bool(resources) and all(narrowed)


def exact_principal_arns(conditions: dict[str, list[Any]]) -> bool:
    values = conditions.get("aws:principalarn", [])
    arns = [v for v in values if not (isinstance(v, tuple) and v[0] == "operator")]
    operators = {v[1] for v in values if isinstance(v, tuple) and v[0] == "operator"}
    exact_operators = {"ArnEquals", "StringEquals"}
    return bool(arns) and operators <= exact_operators and all(
        (cfn.sub_text(a) or "") and ROLE_ARN.match(cfn.sub_text(a) or "") and "*" not in (cfn.sub_text(a) or "")
        for a in arns
    )


def check_permissions(template: dict[str, Any]) -> list[str]:
    problems = []
    for name, res in cfn.resources(template, "AWS::Lambda::Permission"):
        props = res.get("Properties") or {}
        principal = props.get("Principal")
        if principal == "*" or principal is None:
            problems.append(f"{name}: Lambda permission for any principal")
        elif isinstance(principal, str) and principal.endswith(".amazonaws.com"):
            if not ("SourceArn" in props or "SourceAccount" in props):
                problems.append(f"{name}: Lambda permission for {principal} without SourceArn/SourceAccount")
    return problems


def check_template(path: Path) -> tuple[int, list[Finding]]:
    template = cfn.load(path)
    findings: list[Finding] = []
    if "AWS::Serverless-2016-10-31" in json.dumps(template.get("Transform", "")):
        # Check what CloudFormation deploys: the SAM transform's output, with any role or
        # policy SAM generates. The explicit resources are carried over unchanged.
        import check_sam_transform

        translated, error = check_sam_transform.transform(path)
        if translated is None:
            return 0, [Finding(path.name, "SAM transform", error or "failed")]
        template = translated
    count = 0
    for where, kind, document in documents(template):
        if kind == "opaque":
            findings.append(Finding(path.name, where, "policy not written out in the template cannot be checked"))
            continue
        if document is None:
            continue
        for statement in statements(document):
            count += 1
            for problem in check_statement(template, where, kind, statement):
                findings.append(Finding(path.name, *problem.split(": ", 1)))
    for problem in check_permissions(template):
        findings.append(Finding(path.name, *problem.split(": ", 1)))
    return count, findings


def main(argv: list[str]) -> int:
    paths = [Path(p) for p in argv] or cfn.TEMPLATES
    total, findings = 0, []
    for path in paths:
        count, found = check_template(path)
        total += count
        findings.extend(found)
    for finding in findings:
        print(f"policy check: {finding}")
    print(f"policy check: {total} statements in {len(paths)} template(s), {len(findings)} finding(s)")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
