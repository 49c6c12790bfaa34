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
  * lets anyone rewrite or remove an item of an append-only table (a DynamoDB table whose
    Metadata says `AppendOnly: true`): an Allow of any action on it but putting and reading
    items, or a table policy that does not deny UpdateItem, DeleteItem and the batch and
    PartiQL calls that rewrite or remove to every principal;
  * trusts another account other than through an exact role ARN: in a trust policy the
    principal itself must be that role; in a resource policy an account root principal must
    carry an `aws:PrincipalArn` condition naming exact roles, `*` must be narrowed to the
    organization (`aws:PrincipalOrgID`/`aws:PrincipalOrgPaths`) or a source (`aws:SourceArn`/
    `aws:SourceAccount`), and a service principal must name its source (confused deputy).
    One exception: ECR replication acts as the source account itself, with no role of it to
    name, so a registry policy may admit accounts for REPLICATION_ACTIONS only, on
    repositories under a prefix (never `repository/*`);
  * names an ARN whose account field is a wildcard (`arn:aws:iam::*:role/x`,
    `arn:aws:ecr:us-east-1:*:repository/x`), as a resource or in an aws:PrincipalArn
    condition, unless the statement pins the account to exact ones (aws:ResourceAccount or
    s3:ResourceAccount for a resource, aws:PrincipalAccount for a principal: literal account
    ids, or a parameter whose AllowedPattern admits nothing else); a resource given by a
    parameter must have an AllowedPattern that refuses a wildcard account, or such a pin.

Deny statements are not checked for breadth: a wide Deny (e.g. `s3:*` without TLS) only
takes access away. Service control policies (AWS::Organizations::Policy, infra/guardrails.yaml)
are the exception, checked the other way round, because a wide one takes away what the
service or other teams need: every statement must be a Deny of listed, known actions, on
resources narrower than `*` (unless the actions take none), that spares principals by an
ArnNotLike/ArnNotEquals on aws:PrincipalArn naming roles of exact accounts; and, cross-checked
against the roles of the central and target templates (infra/scp.py), no statement may deny a
role of the accounts it is attached to anything that role's own policies grant it, and no
policy may outgrow what Organizations takes (5,120 bytes, with sample parameters).

usage: check_policies.py [TEMPLATE ...]    (default: the templates of infra/)
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
import scp  # noqa: E402

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

# What may be done to an append-only table: add items and read them. PutItem would overwrite an
# item if it were not conditional, and IAM cannot require the condition: the hash chain the
# audit table holds is what shows such an overwrite (`promote audit verify`).
APPEND_ONLY_ALLOWED = {
    "dynamodb:putitem",
    "dynamodb:getitem",
    "dynamodb:batchgetitem",
    "dynamodb:query",
    "dynamodb:scan",
    "dynamodb:conditioncheckitem",
    "dynamodb:describetable",
}
# What an append-only table's own policy denies to every principal, admins included.
APPEND_ONLY_DENIED = {
    "dynamodb:updateitem",
    "dynamodb:deleteitem",
    "dynamodb:batchwriteitem",
    "dynamodb:partiqlupdate",
    "dynamodb:partiqldelete",
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
IDENTITY, TRUST, RESOURCE, KEY, SCP = "identity", "trust", "resource", "key", "service control"

# Condition keys that pin the account of a statement's resources, and of its principal.
RESOURCE_ACCOUNT_KEYS = {"aws:resourceaccount", "s3:resourceaccount"}
PRINCIPAL_ACCOUNT_KEYS = {"aws:principalaccount"}
# The operators by which an SCP statement spares principals.
SPARING_OPERATORS = {"ArnNotLike", "ArnNotEquals"}


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
        elif kind == "AWS::DynamoDB::Table" and "ResourcePolicy" in props:
            yield f"{name} ResourcePolicy", RESOURCE, props["ResourcePolicy"].get("PolicyDocument")
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
        elif kind == "AWS::Organizations::Policy" and props.get("Type") == "SERVICE_CONTROL_POLICY":
            yield name, SCP, props.get("Content")
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
    if kind == SCP:
        return [f"{where}: {p}" for p in check_scp_statement(template, statement)]
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
    problems.extend(wildcard_accounts(template, statement, conditions))
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


def arn_fields(arn: str) -> list[str] | None:
    """The six fields of an ARN (`${...}` substitutions, which may hold colons, kept whole)."""
    guarded = re.sub(r"\$\{[^}]*\}", lambda m: m.group(0).replace(":", "\0"), arn)
    parts = guarded.split(":", 5)
    return [part.replace("\0", ":") for part in parts] if len(parts) == 6 and parts[0] == "arn" else None


def account_field(arn: str) -> str | None:
    fields = arn_fields(arn)
    return fields[4] if fields else None


def exact_account_field(template: dict[str, Any], account: str) -> bool:
    """A literal account id, this account, or a parameter admitting account ids only."""
    if account == "${AWS::AccountId}":
        return True
    match = re.fullmatch(r"\$\{([A-Za-z0-9]+)\}", account)
    return exact_accounts(template, [{"Ref": match.group(1)} if match else account])


def exact_accounts(template: dict[str, Any], values: list[Any]) -> bool:
    """Literal 12-digit account ids, or parameters whose AllowedPattern admits only those."""
    if not values:
        return False
    for value in values:
        if isinstance(value, dict) and set(value) == {"Ref"}:
            pattern = ((template.get("Parameters") or {}).get(value["Ref"]) or {}).get("AllowedPattern")
            rx = re.compile(pattern) if pattern else None
            if rx is None or not rx.fullmatch("123456789012") or any(rx.fullmatch(b) for b in ("*", "12345678901*", "", "?23456789012")):
                return False
        elif not (isinstance(value, str) and re.fullmatch(r"[0-9]{12}", value)):
            return False
    return True


def pinned(template: dict[str, Any], statement: dict[str, Any], keys: set[str]) -> bool:
    """The statement's StringEquals pins one of `keys` to exact accounts."""
    tests = {k.lower(): v for k, v in ((statement.get("Condition") or {}).get("StringEquals") or {}).items()}
    return any(exact_accounts(template, cfn.as_list(tests[key])) for key in keys if key in tests)


def parameter_admits_any_account(template: dict[str, Any], name: str) -> bool:
    """A parameter used as a resource: can it hold an ARN whose account is a wildcard?"""
    pattern = ((template.get("Parameters") or {}).get(name) or {}).get("AllowedPattern")
    if not pattern:
        return True
    rx = re.compile(pattern)
    samples = ["arn:aws:iam::*:role/x", "arn:aws:ecr:us-east-1:*:repository/x", "arn:aws:kms:us-east-1:*:key/x", "arn:aws:s3:us-east-1:*:x"]
    return any(rx.fullmatch(s) for s in samples)


def wildcard_accounts(template: dict[str, Any], statement: dict[str, Any], conditions: dict[str, list[Any]]) -> list[str]:
    """An Allow that names ARNs of any account (as resources, or as the principals of an
    aws:PrincipalArn condition) without pinning the account to exact ones."""
    problems = []
    if not pinned(template, statement, RESOURCE_ACCOUNT_KEYS):
        for resource in cfn.as_list(statement.get("Resource", [])):
            if isinstance(resource, dict) and set(resource) == {"Ref"}:
                if resource["Ref"] in (template.get("Parameters") or {}) and parameter_admits_any_account(template, resource["Ref"]):
                    problems.append(
                        f"Resource !Ref {resource['Ref']} may name any account (no AllowedPattern refusing a * account, "
                        "nor an aws:ResourceAccount condition)"
                    )
                continue
            text = cfn.sub_text(resource) or ""
            account = account_field(text)
            if account is not None and ("*" in account or "?" in account):
                problems.append(f"Resource {text!r} names any account: name the account, or pin it with aws:ResourceAccount")
    if not pinned(template, statement, PRINCIPAL_ACCOUNT_KEYS):
        for value in conditions.get("aws:principalarn", []):
            text = "" if isinstance(value, tuple) else cfn.sub_text(value) or ""
            account = account_field(text)
            if account is not None and ("*" in account or "?" in account):
                problems.append(f"aws:PrincipalArn {text!r} names any account: name the account, or pin it with aws:PrincipalAccount")
    return problems


def check_scp_statement(template: dict[str, Any], statement: dict[str, Any]) -> list[str]:
    """A service control policy statement: a Deny of listed, known actions on resources
    narrower than `*`, sparing exact accounts' roles by their ARN."""
    problems = []
    if statement.get("Effect") != "Deny":
        problems.append("an SCP statement here must Deny: these policies only take side doors away")
    for negated in ("NotAction", "NotResource", "NotPrincipal", "Principal"):
        if negated in statement:
            problems.append(f"{negated} in an SCP statement: list the actions and resources it denies")
    actions = cfn.as_list(statement.get("Action", []))
    for action in actions:
        service, _, name = str(action).partition(":")
        if not isinstance(action, str) or "*" in action or "?" in action:
            problems.append(f"action {json.dumps(action)}: list the actions (the cross-check needs them)")
        elif service.lower() not in ACTIONS or name.lower() not in ACTIONS[service.lower()]:
            problems.append(f"unknown action {action}")
    star_only = all(isinstance(a, str) and a.lower() in STAR_ONLY_ACTIONS for a in actions)
    for resource in cfn.as_list(statement.get("Resource", [])):
        if resource_is_star(resource) and not star_only:
            problems.append(f"Resource {cfn.sub_text(resource)!r}: a Deny on every resource takes them from other teams too")
    spared = [
        value
        for operator, tests in (statement.get("Condition") or {}).items()
        if operator in SPARING_OPERATORS
        for key, values in (tests or {}).items()
        if key.lower() == "aws:principalarn"
        for value in cfn.as_list(values)
    ]
    if not spared:
        problems.append("no principal exception (ArnNotLike aws:PrincipalArn): it would deny the service its own calls")
    for value in spared:
        problems.extend(scp_exception_problems(template, value))
    return problems


def scp_exception_problems(template: dict[str, Any], value: Any) -> list[str]:
    """An exception names roles of exact accounts: a `*` account or a `role/*` spares everyone."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        pattern = ((template.get("Parameters") or {}).get(value["Ref"]) or {}).get("AllowedPattern")
        rx = re.compile(pattern) if pattern else None
        broad = ["*", "arn:aws:iam::*:role/x", "arn:aws:iam::123456789012:role/*", "arn:aws:iam::123456789012:user/x", "arn:aws:iam::123456789012:root"]
        if rx is None or any(rx.fullmatch(b) for b in broad):
            return [f"exception !Ref {value['Ref']}: its AllowedPattern must admit roles of exact accounts only"]
        return []
    if isinstance(value, dict) and set(value) == {"Fn::Split"}:
        joined = value["Fn::Split"][1]
        items = joined["Fn::Join"][1] if isinstance(joined, dict) and set(joined) == {"Fn::Join"} else [joined]
        return [p for item in cfn.as_list(items) for p in scp_exception_problems(template, item)]
    if isinstance(value, dict) and set(value) == {"Fn::Join"}:
        return [p for item in cfn.as_list(value["Fn::Join"][1]) for p in scp_exception_problems(template, item)]
    text = cfn.sub_text(value)
    fields = arn_fields(text) if text is not None else None
    if fields is None:
        return [f"exception {json.dumps(value)} cannot be checked: name roles by their ARN"]
    if not exact_account_field(template, fields[4]) or not fields[5].startswith("role/") or fields[5].startswith("role/*"):
        return [f"exception {text!r}: name roles of an exact account"]
    return []


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


def append_only_tables(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, res in cfn.resources(template, "AWS::DynamoDB::Table"):
        if (res.get("Metadata") or {}).get("AppendOnly") is True:
            yield name, res


def names_table(resource: Any, logical: str, name_parameter: str | None) -> bool:
    """Whether a statement's Resource may be the table: its ARN by GetAtt or Sub, by its name's
    parameter, or a wildcard over tables."""
    if isinstance(resource, dict) and set(resource) == {"Fn::GetAtt"}:
        target = resource["Fn::GetAtt"]
        target = target.split(".") if isinstance(target, str) else target
        return target[0] == logical
    text = cfn.sub_text(resource)
    if text is None:
        return False
    named = [f"${{{logical}.Arn}}", f"${{{logical}}}"] + ([f"${{{name_parameter}}}"] if name_parameter else [])
    table_part = text.split(":table/", 1)[1] if ":table/" in text else None
    return text == "*" or any(n in text for n in named) or (table_part is not None and "*" in table_part)


def denied_to_everyone(document: Any) -> set[str]:
    denied: set[str] = set()
    for statement in statements(document):
        if statement.get("Effect") == "Deny" and principals(statement) == [("AWS", "*")] and not statement.get("Condition"):
            denied |= {a.lower() for a in cfn.as_list(statement.get("Action", [])) if isinstance(a, str)}
    return denied


def check_append_only(template: dict[str, Any]) -> list[str]:
    problems = []
    for logical, table in append_only_tables(template):
        props = table.get("Properties") or {}
        name = props.get("TableName")
        name_parameter = name["Ref"] if isinstance(name, dict) and set(name) == {"Ref"} else None
        missing = APPEND_ONLY_DENIED - denied_to_everyone((props.get("ResourcePolicy") or {}).get("PolicyDocument"))
        if missing:
            problems.append(f"{logical}: append-only table whose policy does not deny {', '.join(sorted(missing))} to every principal")
        for where, kind, document in documents(template):
            if kind not in (IDENTITY, RESOURCE) or document is None:
                continue
            for statement in statements(document):
                if statement.get("Effect") != "Allow":
                    continue
                if not any(names_table(r, logical, name_parameter) for r in cfn.as_list(statement.get("Resource", []))):
                    continue
                actions = [a for a in cfn.as_list(statement.get("Action", [])) if isinstance(a, str)]
                rewriting = sorted(a for a in actions if a == "*" or (a.lower().startswith("dynamodb:") and a.lower() not in APPEND_ONLY_ALLOWED))
                if rewriting:
                    sid = f" [{statement['Sid']}]" if statement.get("Sid") else ""
                    problems.append(f"{where}{sid}: {', '.join(rewriting)} on the append-only table {logical}: its items may only be put and read")
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
    for problem in check_permissions(template) + check_append_only(template):
        findings.append(Finding(path.name, *problem.split(": ", 1)))
    findings.extend(check_guardrails(path, template))
    return count, findings


def check_guardrails(path: Path, template: dict[str, Any]) -> list[Finding]:
    """The SCPs of the template against the roles of the central and target templates beside it
    (infra/'s when it has none beside it)."""
    if not any(True for _, kind, _ in documents(template) if kind == SCP):
        return []
    folder = path.parent if (path.parent / "central-account.yaml").exists() else cfn.INFRA
    central, target = cfn.load(folder / "central-account.yaml"), cfn.load(folder / "target-account.yaml")
    return [Finding(path.name, *problem.split(": ", 1)) for problem in scp.guardrail_findings(template, central, target)]


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
