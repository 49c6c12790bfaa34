"""Name defaults of the three templates vs infra/names.json (which the emulator's provisioning
reads), the one name source of the forwarding role, the target roles' hosting scope, and the
one allow-list of AWS image registries."""

from __future__ import annotations

import json
import re
from typing import Any

import cfn
from drift.report import LOCAL_PSEUDO, Report


def check_names(templates: dict[str, dict[str, Any]], names: dict[str, Any], report: Report) -> None:
    central = templates["central-account.yaml"]
    dev = templates["dev-account.yaml"]
    target = templates["target-account.yaml"]
    c, d, t = cfn.parameter_defaults(central), cfn.parameter_defaults(dev), cfn.parameter_defaults(target)
    roles, function_roles = names["roles"], names["function_roles"]

    report.same("central EventBusName", c.get("EventBusName"), names["event_bus"])
    report.same("central LedgerTableName", c.get("LedgerTableName"), names["ledger_table"])
    report.same("central AuditTableName", c.get("AuditTableName"), names["audit_table"])
    report.same("central ArtifactBucketPrefix", c.get("ArtifactBucketPrefix"), names["artifact_bucket_prefix"])
    report.same("central EvidenceBucketPrefix", c.get("EvidenceBucketPrefix"), names["evidence_bucket_prefix"])
    report.same("central ApprovalTopicName", c.get("ApprovalTopicName"), names["approval_topic"])
    report.same("central PipelineName", c.get("PipelineName"), names["pipeline"])
    report.same("central SourceReadRoleName", c.get("SourceReadRoleName"), roles["source_read"])
    report.same("central DeployRoleName", c.get("DeployRoleName"), roles["deploy"])
    report.same("central SageMakerExecutionRoleName", c.get("SageMakerExecutionRoleName"), roles["sagemaker_execution"])

    report.same("dev CentralEventBusName", d.get("CentralEventBusName"), names["event_bus"])
    report.same("dev SourceReadRoleName", d.get("SourceReadRoleName"), roles["source_read"])
    report.same("dev ForwardRoleName", d.get("ForwardRoleName"), roles["forward_approvals"])
    report.same("dev PromoteFunctionRoleName", d.get("PromoteFunctionRoleName"), function_roles["promote-model"])
    # The bus admits the forwarding role by name: one name for both stacks.
    report.same("central ForwardRoleName", c.get("ForwardRoleName"), roles["forward_approvals"])
    report.same("central ForwardRoleName (dev-account.yaml ForwardRoleName)", c.get("ForwardRoleName"), d.get("ForwardRoleName"), "dev-account.yaml")
    report.same("dev ArtifactKeyPattern", d.get("ArtifactKeyPattern"), names.get("dev_artifact_key_pattern"))

    report.same("target DeployRoleName", t.get("DeployRoleName"), roles["deploy"])
    report.same("target SageMakerExecutionRoleName", t.get("SageMakerExecutionRoleName"), roles["sagemaker_execution"])
    report.same("target DeployFunctionRoleName", t.get("DeployFunctionRoleName"), function_roles["deploy-model"])
    report.same("target TestFunctionRoleName", t.get("TestFunctionRoleName"), function_roles["test-model"])
    report.same("target RevocationFunctionRoleName", t.get("RevocationFunctionRoleName"), function_roles["record-outcome"])
    report.same("target OperatorRollbackRoleName", t.get("OperatorRollbackRoleName"), roles["operator_rollback"])
    report.same("target ServiceName", t.get("ServiceName"), c.get("ServiceName"), "central-account.yaml")
    report.expect(
        (t.get("CentralArtifactBucketName") or "") == ""
        and "model-promotion-artifacts-${CentralAccountId}" in json.dumps(target),
        "target: the default central bucket name is not {artifact_bucket_prefix}-{central account}",
    )
    report.same("names.json artifact_bucket_prefix (target default)", "model-promotion-artifacts", names["artifact_bucket_prefix"])

    c_params = {**c, **LOCAL_PSEUDO}
    t_params = {**t, **LOCAL_PSEUDO, "Stage": "prod"}
    # Function roles: the central names, which the dev and target trusts name.
    for logical, resource in cfn.resources(central, "AWS::IAM::Role"):
        role_name = cfn.substitute((resource.get("Properties") or {}).get("RoleName"), c_params)
        for function, expected in function_roles.items():
            if logical == pascal(function) + "Role":
                report.same(f"central {logical} name", role_name, expected)
    # The ledger's key, and the audit table's (the emulator makes both alike).
    for logical in ("LedgerTable", "AuditTable"):
        table = dict(cfn.resources(central, "AWS::DynamoDB::Table")).get(logical, {}).get("Properties", {})
        key = {k["KeyType"]: k["AttributeName"] for k in table.get("KeySchema", [])}
        report.same(f"{logical} key", {"hash": key.get("HASH"), "range": key.get("RANGE")}, names["ledger_key"])
    # The bus admits the dev forwarding role by name.
    bus_policy = dict(cfn.resources(central, "AWS::Events::EventBusPolicy")).get("EventBusOrganizationPolicy", {})
    principal = (((bus_policy.get("Properties") or {}).get("Statement") or {}).get("Condition") or {}).get("ArnLike", {})
    forward = cfn.substitute(principal.get("aws:PrincipalArn"), c_params) or ""
    report.same("central bus policy forwarding role", forward.rsplit("/", 1)[-1], roles["forward_approvals"])
    report.expect(
        (cfn.sub_text(principal.get("aws:PrincipalArn")) or "").endswith(":role/${ForwardRoleName}"),
        "central bus policy: the forwarding role name is not the ForwardRoleName parameter (the dev stack's name source)",
    )
    # promote-model may publish its own event only.
    promote_role = dict(cfn.resources(central, "AWS::IAM::Role")).get("PromoteModelRole", {})
    publish = [
        s
        for p in (promote_role.get("Properties") or {}).get("Policies", [])
        for s in p["PolicyDocument"]["Statement"]
        if s.get("Sid") == "PublishModelPromoted"
    ]
    equals = (publish[0].get("Condition") or {}).get("StringEquals", {}) if publish else {}
    report.same("promote-model event source", equals.get("events:source"), names["event_source"])
    report.same(
        "promote-model event detail-types",
        sorted(cfn.as_list(equals.get("events:detail-type"))),
        sorted([names["promoted_detail_type"], names["revoked_detail_type"]]),
    )
    # The revocation rule takes the detail-type promote-model publishes.
    revocation = dict(cfn.resources(central, "AWS::Events::Rule")).get("RevocationRule", {})
    pattern = (revocation.get("Properties") or {}).get("EventPattern") or {}
    report.same("revocation rule detail-type", pattern.get("detail-type"), [names["revoked_detail_type"]])
    report.same("revocation rule source", pattern.get("source"), [names["event_source"]])
    # Rollback alarms of the prod target stack.
    alarms = [
        cfn.substitute((r.get("Properties") or {}).get("AlarmName"), t_params)
        for _, r in cfn.resources(target, "AWS::CloudWatch::Alarm")
    ]
    report.same("target rollback alarms", sorted(alarms), sorted(names["rollback_alarms"]))
    check_hosting_scope(target, names["hosting_name_prefix"], report)
    check_image_registries(c, d, t, names, report)
    check_model_data_readers(central, target, names["model_data_key_pattern"], report)
    check_bus_admits_what_dev_forwards(central, dev, report)
    if "guardrails.yaml" in templates:
        check_guardrail_names(templates, names, report)


def statement_with_sid(template: dict[str, Any], logical: str, sid: str) -> dict[str, Any]:
    """The statement `sid` of a role's policies or of a bucket policy, {} if there is none."""
    props = ((template.get("Resources") or {}).get(logical) or {}).get("Properties") or {}
    documents = [p.get("PolicyDocument") or {} for p in cfn.as_list(props.get("Policies", []))] + [props.get("PolicyDocument") or {}]
    for document in documents:
        for statement in cfn.as_list(document.get("Statement", [])):
            if isinstance(statement, dict) and statement.get("Sid") == sid:
                return statement
    return {}


# Who reads the central model data, and the statement that lets them: each must name the
# artifact bucket's objects under names.json's model_data_key_pattern, nothing wider.
MODEL_DATA_READERS = [
    ("target", "SageMakerExecutionRole", "ReadCentralModelData"),
    ("central", "ArtifactBucketPolicy", "TargetExecutionRolesReadModels"),
    ("central", "DeployModelRole", "CheckTheModelData"),
]


def check_model_data_readers(central: dict[str, Any], target: dict[str, Any], pattern: str, report: Report) -> None:
    """The model data's readers read the keys the code gives model data (the CLI's tests hold
    central_artifact_uri to the pattern), not the reports and baselines beside them."""
    for stack, logical, sid in MODEL_DATA_READERS:
        statement = statement_with_sid(central if stack == "central" else target, logical, sid)
        resources = [cfn.sub_text(r) or "" for r in cfn.as_list(statement.get("Resource", []))]
        report.expect(
            bool(resources) and all(r.endswith("}/" + pattern) for r in resources),
            f"{stack} {logical} [{sid}]: reads {resources or 'nothing'}, not the artifact bucket's {pattern} (names.json model_data_key_pattern)",
        )


def check_bus_admits_what_dev_forwards(central: dict[str, Any], dev: dict[str, Any], report: Report) -> None:
    """The central bus admits, from the allow-listed dev accounts, exactly the source and detail
    types the dev stack's forwarding rule forwards."""
    policy = ((central.get("Resources") or {}).get("EventBusOrganizationPolicy") or {}).get("Properties") or {}
    condition = (policy.get("Statement") or {}).get("Condition") or {}
    forward = (((dev.get("Resources") or {}).get("ForwardRule") or {}).get("Properties") or {}).get("EventPattern") or {}
    admitted_sources = cfn.as_list((condition.get("ForAllValues:StringEquals") or {}).get("events:source"))
    admitted_types = cfn.as_list((condition.get("StringEquals") or {}).get("events:detail-type"))
    report.same("central bus policy events:source", sorted(admitted_sources), sorted(forward.get("source", [])), "dev-account.yaml ForwardRule")
    forwarded_types = forward.get("detail-type", []) + [t for branch in forward.get("$or", []) for t in branch.get("detail-type", [])]
    report.same("central bus policy events:detail-type", sorted(admitted_types), sorted(forwarded_types), "dev-account.yaml ForwardRule")
    report.same("central bus policy aws:PrincipalAccount", (condition.get("StringEquals") or {}).get("aws:PrincipalAccount"), {"Ref": "DevAccountIds"}, "the DevAccountIds parameter")


def check_guardrail_names(templates: dict[str, dict[str, Any]], names: dict[str, Any], report: Report) -> None:
    """The guardrails name the roles, pipeline and hosting prefix the stacks make; every role of
    the stacks is named {ServiceName}-..., which the guardrails' role patterns cover."""
    g = cfn.parameter_defaults(templates["guardrails.yaml"])
    c = cfn.parameter_defaults(templates["central-account.yaml"])
    report.same("guardrails ServiceName", g.get("ServiceName"), c.get("ServiceName"), "central-account.yaml")
    report.same("guardrails PipelineName", g.get("PipelineName"), names["pipeline"])
    report.same("guardrails DeployRoleName", g.get("DeployRoleName"), names["roles"]["deploy"])
    report.same("guardrails OperatorRollbackRoleName", g.get("OperatorRollbackRoleName"), names["roles"]["operator_rollback"])
    text = json.dumps(templates["guardrails.yaml"].get("Resources"))
    for function, role in names["function_roles"].items():
        report.expect(role == f"{g.get('ServiceName')}-{function}", f"names.json function role {role} is not {{ServiceName}}-{function}, as the guardrails name it")
    for stage_resource in ("model", "endpoint-config", "endpoint"):
        report.expect(
            f":{stage_resource}/{names['hosting_name_prefix']}*" in text,
            f"guardrails: no {stage_resource}/{names['hosting_name_prefix']}* (names.json hosting_name_prefix) among the resources they guard",
        )
    prefix = f"{g.get('ServiceName')}-"
    values = {**LOCAL_PSEUDO, "AWS::AccountId": "222222222222", "Stage": "prod"}
    for file in ("central-account.yaml", "target-account.yaml"):
        defaults = {**cfn.parameter_defaults(templates[file]), **values}
        for logical, resource in cfn.resources(templates[file], "AWS::IAM::Role"):
            name = str(cfn.substitute((resource.get("Properties") or {}).get("RoleName"), defaults))
            report.expect(name.startswith(prefix), f"{file} {logical}: role {name} is not named {prefix}..., which the guardrails' role patterns cover")


def check_image_registries(c: dict[str, str], d: dict[str, str], t: dict[str, str], names: dict[str, Any], report: Report) -> None:
    """One allow-list of AWS image registries: promote-model's (the code's default is held to
    names.json by the CLI's tests), the dev read role's and the stage execution roles'."""
    expected = names["aws_image_registries"]
    report.same("central AwsImageRegistryAccounts", (c.get("AwsImageRegistryAccounts") or "").split(","), expected)
    for stack, defaults in (("dev", d), ("target", t)):
        arns = (defaults.get("AwsImageRepositoryArns") or "").split(",")
        accounts = [arn.split(":")[4] if arn.count(":") >= 5 else arn for arn in arns]
        report.same(f"{stack} AwsImageRepositoryArns (accounts)", accounts, expected)


HOSTING_RESOURCE = re.compile(r":sagemaker:.*:(model|endpoint-config|endpoint)/([^/]*)$")


def check_hosting_scope(target: dict[str, Any], prefix: str, report: Report) -> None:
    """Every model, endpoint config and endpoint the target roles may touch is the service's own."""
    scoped = 0
    for arn in cfn.strings(target):
        match = HOSTING_RESOURCE.search(arn)
        if match:
            scoped += 1
            report.expect(match.group(2) == prefix + "*", f"target: {arn} is not limited to the names starting {prefix!r}")
    report.expect(scoped > 0, "target: no SageMaker hosting resource found to check against hosting_name_prefix")


def pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))
