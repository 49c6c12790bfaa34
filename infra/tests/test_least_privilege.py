"""Least privilege where the review found it loose: models network-isolated, the execution roles
reading the model data only, the prod approvers reading the evidence, the central bus admitting
the dev accounts' forwarded state changes only, no ARN of any account, no grant the code does
not use, the operators' rollback role, alarms on the pipeline actions' asynchronous events.
Each assertion is shown failing on a template changed to break it."""

from __future__ import annotations

import copy
import json
import textwrap
from pathlib import Path
from typing import Any

import cfn
import check_policies
from drift import grants, names as name_checks, rules
from drift.report import Report

INFRA = cfn.INFRA


def role_statements(template: dict[str, Any], logical: str) -> list[dict[str, Any]]:
    props = template["Resources"][logical]["Properties"]
    documents = [p["PolicyDocument"] for p in props.get("Policies", [])] or [props["PolicyDocument"]]
    return [s for d in documents for s in cfn.as_list(d["Statement"]) if isinstance(s, dict)]


def granted(template: dict[str, Any], logical: str) -> set[str]:
    return {a for s in role_statements(template, logical) if s.get("Effect") == "Allow" for a in cfn.as_list(s["Action"])}


def with_sid(template: dict[str, Any], logical: str, sid: str) -> dict[str, Any]:
    (statement,) = [s for s in role_statements(template, logical) if s.get("Sid") == sid]
    return statement


def policy_findings(tmp_path: Path, template: dict[str, Any], name: str) -> list[str]:
    path = tmp_path / name
    path.write_text(json.dumps(template))
    return [str(f) for f in check_policies.check_template(path)[1]]


# ------------------------------------------------------------------ network isolation


def isolation_problems(target: dict[str, Any]) -> list[str]:
    """Every grant of sagemaker:CreateModel to the deploy role requires network isolation."""
    problems = []
    creates = [s for s in role_statements(target, "DeployRole") if "sagemaker:CreateModel" in cfn.as_list(s.get("Action", []))]
    if not creates:
        problems.append("the deploy role cannot create models")
    for statement in creates:
        if ((statement.get("Condition") or {}).get("Bool") or {}).get("sagemaker:NetworkIsolation") != "true":
            problems.append(f"[{statement.get('Sid')}] allows CreateModel without sagemaker:NetworkIsolation true")
    return problems


def test_the_deploy_role_creates_network_isolated_models_only(templates: dict[str, Any]) -> None:
    target = templates["target-account.yaml"]
    assert isolation_problems(target) == []
    changed = copy.deepcopy(target)
    del with_sid(changed, "DeployRole", "CreateIsolatedModels")["Condition"]
    assert isolation_problems(changed) == ["[CreateIsolatedModels] allows CreateModel without sagemaker:NetworkIsolation true"]
    changed = copy.deepcopy(target)
    with_sid(changed, "DeployRole", "Hosting")["Action"].append("sagemaker:CreateModel")
    assert isolation_problems(changed) == ["[Hosting] allows CreateModel without sagemaker:NetworkIsolation true"]


# ------------------------------------------------------------------ the model data's readers


def test_the_execution_roles_and_the_gates_read_the_model_data_only(templates: dict[str, Any], names: dict[str, Any]) -> None:
    assert names["model_data_key_pattern"] == "*/model/*"
    for stack, logical, sid in name_checks.MODEL_DATA_READERS:
        changed = copy.deepcopy(templates)
        template = changed["central-account.yaml" if stack == "central" else "target-account.yaml"]
        statement = name_checks.statement_with_sid(template, logical, sid)
        statement["Resource"] = json.loads(json.dumps(statement["Resource"]).replace("/*/model/*", "/*"))
        report = Report()
        name_checks.check_names(changed, names, report)
        assert any(f"{stack} {logical} [{sid}]: reads" in e for e in report.errors), (logical, report.errors)


# ------------------------------------------------------------------ the prod approvers' evidence


def evidence_problems(central: dict[str, Any]) -> list[str]:
    """The prod approvers read the test reports (objects under reports/, decrypted through S3)."""
    statements = role_statements(central, "ProdApproverPolicy")
    reads = [cfn.sub_text(r) for s in statements if "s3:GetObject" in cfn.as_list(s["Action"]) for r in cfn.as_list(s["Resource"])]
    decrypts = [s for s in statements if "kms:Decrypt" in cfn.as_list(s["Action"])]
    problems = []
    if "${ArtifactBucket.Arn}/reports/*" not in reads:
        problems.append("the prod approvers cannot read the artifact bucket's reports/")
    if any(r and not r.endswith("/reports/*") for r in reads):
        problems.append(f"the prod approvers read more than reports/: {reads}")
    if not any((s.get("Condition") or {}).get("StringEquals", {}).get("kms:ViaService") for s in decrypts):
        problems.append("the prod approvers cannot decrypt the reports through S3")
    return problems


def test_the_prod_approvers_read_the_reports_they_are_asked_to_review(central: dict[str, Any]) -> None:
    assert evidence_problems(central) == []
    assert {"sagemaker:DescribeModelCard", "sagemaker:DescribeModelPackage"} <= granted(central, "ProdApproverPolicy")
    changed = copy.deepcopy(central)
    statements = changed["Resources"]["ProdApproverPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    statements[:] = [s for s in statements if s.get("Sid") != "ReadTheTestReports"]
    assert evidence_problems(changed) == ["the prod approvers cannot read the artifact bucket's reports/"]
    changed = copy.deepcopy(central)
    reports = with_sid(changed, "ProdApproverPolicy", "ReadTheTestReports")
    reports["Resource"][0] = {"Fn::Sub": "${ArtifactBucket.Arn}/*"}
    assert "the prod approvers cannot read the artifact bucket's reports/" in evidence_problems(changed)


# ------------------------------------------------------------------ the central bus


def test_the_bus_admits_the_dev_accounts_forwarded_approvals_only(templates: dict[str, Any], names: dict[str, Any], tmp_path: Path) -> None:
    central = templates["central-account.yaml"]
    condition = central["Resources"]["EventBusOrganizationPolicy"]["Properties"]["Statement"]["Condition"]
    assert condition["StringEquals"]["aws:PrincipalAccount"] == {"Ref": "DevAccountIds"}
    assert condition["StringEquals"]["events:detail-type"] == ["SageMaker Model Package State Change", "AWS API Call via CloudTrail"]
    assert condition["ForAllValues:StringEquals"]["events:source"] == ["aws.sagemaker"]

    changed = copy.deepcopy(templates)
    bus = changed["central-account.yaml"]["Resources"]["EventBusOrganizationPolicy"]["Properties"]["Statement"]["Condition"]
    bus["StringEquals"]["events:detail-type"] = "ModelPromoted"
    report = Report()
    name_checks.check_names(changed, names, report)
    assert any("central bus policy events:detail-type" in e for e in report.errors), report.errors

    # Without the account pin, the forwarding role's ARN names any account of the organization.
    del bus["StringEquals"]["aws:PrincipalAccount"]
    found = policy_findings(tmp_path, changed["central-account.yaml"], "central-account.yaml")
    assert any("EventBusOrganizationPolicy" in f and "aws:PrincipalArn" in f and "names any account" in f for f in found), found


# ------------------------------------------------------------------ no ARN of any account


def role_template(statement: str, parameters: str = "") -> str:
    return f"""
        AWSTemplateFormatVersion: "2010-09-09"
        Parameters:
          Pinned:
            Type: CommaDelimitedList
            AllowedPattern: "^[0-9]{{12}}$"
          Loose:
            Type: CommaDelimitedList
{textwrap.indent(textwrap.dedent(parameters), " " * 12)}
        Resources:
          R:
            Type: AWS::IAM::Role
            Properties:
              AssumeRolePolicyDocument:
                Version: "2012-10-17"
                Statement:
                  - Effect: Allow
                    Principal:
                      Service: lambda.amazonaws.com
                    Action: sts:AssumeRole
              Policies:
                - PolicyName: p
                  PolicyDocument:
                    Version: "2012-10-17"
                    Statement:
{textwrap.indent(textwrap.dedent(statement).strip(), " " * 22)}
        """


def fixture_findings(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "fixture.yaml"
    path.write_text(textwrap.dedent(text))
    return [str(f) for f in check_policies.check_template(path)[1]]


def test_the_policy_check_flags_an_arn_of_any_account(tmp_path: Path) -> None:
    for resource in ("arn:aws:iam::*:role/model-promotion-source-read", "arn:aws:ecr:us-east-1:*:repository/*", "arn:aws:kms:us-east-1:?????????????:key/*"):
        found = fixture_findings(tmp_path, role_template(f"""
            - Effect: Allow
              Action: sts:AssumeRole
              Resource: {resource}
        """))
        assert any("names any account" in f for f in found), (resource, found)


def test_an_arn_of_any_account_passes_only_with_the_account_pinned_to_exact_ones(tmp_path: Path) -> None:
    statement = """
        - Effect: Allow
          Action: sts:AssumeRole
          Resource: arn:aws:iam::*:role/model-promotion-source-read
          Condition:
            StringEquals:
              aws:ResourceAccount: {accounts}
    """
    assert fixture_findings(tmp_path, role_template(statement.format(accounts="!Ref Pinned"))) == []
    assert fixture_findings(tmp_path, role_template(statement.format(accounts="['111111111111']"))) == []
    loose = fixture_findings(tmp_path, role_template(statement.format(accounts="!Ref Loose")))
    assert any("names any account" in f for f in loose), loose
    wildcard = fixture_findings(tmp_path, role_template(statement.format(accounts="['11111111111*']")))
    assert any("names any account" in f for f in wildcard), wildcard


def test_a_resource_parameter_must_refuse_an_arn_of_any_account(tmp_path: Path) -> None:
    statement = """
        - Effect: Allow
          Action: ecr:BatchGetImage
          Resource: !Ref Loose
    """
    assert any("!Ref Loose may name any account" in f for f in fixture_findings(tmp_path, role_template(statement)))
    pinned = role_template(statement, parameters='AllowedPattern: "^arn:aws:ecr:[a-z0-9-]+:[0-9]{12}:repository/[a-z0-9/_-]+$"')
    assert fixture_findings(tmp_path, pinned) == []


def test_the_real_templates_pin_every_arn_of_any_account(templates: dict[str, Any], tmp_path: Path) -> None:
    central = templates["central-account.yaml"]
    for sid in ("AssumeDevReadRole", "DecryptDevArtifacts"):
        changed = copy.deepcopy(central)
        del with_sid(changed, "PromoteModelRole", sid)["Condition"]["StringEquals"]["aws:ResourceAccount"]
        found = policy_findings(tmp_path, changed, "central-account.yaml")
        assert any(f"PromoteModelRole policy promote-model [{sid}]" in f and "names any account" in f for f in found), (sid, found)
    changed = copy.deepcopy(central)
    del changed["Parameters"]["DevAccountIds"]["AllowedPattern"]
    found = policy_findings(tmp_path, changed, "central-account.yaml")
    assert any("[AssumeDevReadRole]" in f and "names any account" in f for f in found), found


# ------------------------------------------------------------------ no grant the code does not use


def grant_errors(templates: dict[str, Any]) -> list[str]:
    report = Report()
    grants.check_grants(templates, report)
    return report.errors


def test_a_grant_no_adapter_calls_for_is_drift(templates: dict[str, Any]) -> None:
    assert grant_errors(templates) == []
    changed = copy.deepcopy(templates)
    with_sid(changed["central-account.yaml"], "PromoteModelRole", "ModelCards")["Action"].append("sagemaker:ListModelCardVersions")
    with_sid(changed["target-account.yaml"], "DeployRole", "Hosting")["Action"].append("sagemaker:DescribeModel")
    with_sid(changed["target-account.yaml"], "OperatorRollbackRole", "SeePromotedEndpoints")["Action"].append("sagemaker:DescribeModel")
    errors = "\n".join(grant_errors(changed))
    assert "PromoteModelRole [ModelCards]: sagemaker:ListModelCardVersions is granted but no adapter" in errors, errors
    assert "DeployRole [Hosting]: sagemaker:DescribeModel is granted" in errors, errors
    assert "OperatorRollbackRole [SeePromotedEndpoints]: sagemaker:DescribeModel is granted" in errors, errors


def test_a_role_an_aws_service_runs_as_is_the_services_to_use(templates: dict[str, Any]) -> None:
    changed = copy.deepcopy(templates)
    with_sid(changed["target-account.yaml"], "SageMakerExecutionRole", "EndpointLogs")["Action"].append("logs:DescribeLogGroups")
    assert grant_errors(changed) == []


def ledger(template: dict[str, Any], logical: str) -> set[str]:
    return {a for a in granted(template, logical) if a.startswith("dynamodb:")}


def test_each_function_role_has_the_ledger_actions_its_code_reaches(central: dict[str, Any]) -> None:
    # promote-model: claim, renew and release (UpdateItem), records and audit entries and the
    # final transaction's puts (PutItem), the record (GetItem).
    assert ledger(central, "PromoteModelRole") == {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"}
    assert ledger(central, "StartDeploymentRole") == {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"}
    # deploy-model: deployments, the promotion and test records read, deployments and audit entries written.
    assert ledger(central, "DeployModelRole") == {"dynamodb:GetItem", "dynamodb:PutItem"}
    # test-model's rollback of a failed test and record-outcome's revocation look back over the
    # model's promotions (promotions(): a Scan) and their audit trails (a Query).
    for role in ("TestModelRole", "RecordOutcomeRole"):
        assert ledger(central, role) == {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:Scan"}, role


def test_deploy_model_may_make_the_calls_of_its_gates(central: dict[str, Any]) -> None:
    allowed = granted(central, "DeployModelRole")
    assert {"codepipeline:GetPipelineExecution", "codepipeline:ListActionExecutions"} <= allowed
    assert cfn.sub_text(with_sid(central, "DeployModelRole", "ConfirmTheJob")["Resource"]).endswith(":${PipelineName}")
    assert with_sid(central, "DeployModelRole", "ModelDataChecksums")["Condition"] == {"StringEquals": {"kms:ViaService": {"Fn::Sub": "s3.${AWS::Region}.amazonaws.com"}}}
    assert "codepipeline:PutApprovalResult" not in allowed and "codepipeline:StopPipelineExecution" not in allowed


# ------------------------------------------------------------------ the operators' rollback role


def test_the_operators_rollback_role_only_points_promoted_endpoints_at_promoted_configs(templates: dict[str, Any]) -> None:
    target = templates["target-account.yaml"]
    role = target["Resources"]["OperatorRollbackRole"]
    assert role["Condition"] == "HasOperators"
    assert role["Properties"]["RoleName"] == {"Ref": "OperatorRollbackRoleName"}
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"AWS": {"Ref": "OperatorRoleArns"}}
    assert granted(target, "OperatorRollbackRole") == {"sagemaker:UpdateEndpoint", "sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig"}
    repoint = with_sid(target, "OperatorRollbackRole", "RepointPromotedEndpoints")
    assert sorted(cfn.sub_text(r) for r in repoint["Resource"]) == [
        "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:endpoint-config/promoted-*",
        "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:endpoint/promoted-*",
    ], "UpdateEndpoint is authorized on the endpoint and the config it names"
    deploy_trust = target["Resources"]["DeployRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert "OperatorRoleArns" not in str(deploy_trust), "operators no longer assume the deploy role"


def test_the_rollback_role_has_one_name_for_the_stack_the_cli_and_the_guardrails(templates: dict[str, Any], names: dict[str, Any]) -> None:
    changed = copy.deepcopy(templates)
    changed["target-account.yaml"]["Parameters"]["OperatorRollbackRoleName"]["Default"] = "ops-rollback"
    report = Report()
    name_checks.check_names(changed, names, report)
    assert any("target OperatorRollbackRoleName" in e for e in report.errors), report.errors


# ------------------------------------------------------------------ the pipeline actions' asynchronous events


def test_each_pipeline_action_has_alarms_on_dropped_and_aged_events(central: dict[str, Any]) -> None:
    functions = {logical: r["Metadata"]["BuildProperties"]["Binary"] for logical, r in cfn.resources(central, "AWS::Serverless::Function")}
    invoked = {"deploy-model", "test-model"}

    def errors(template: dict[str, Any]) -> list[str]:
        report = Report()
        rules.check_async_alarms(template, functions, invoked, report)
        return report.errors

    assert errors(central) == []
    changed = copy.deepcopy(central)
    del changed["Resources"]["DeployModelAsyncAgeAlarm"]
    changed["Resources"]["TestModelAsyncDroppedAlarm"]["Properties"]["AlarmActions"] = []
    assert errors(changed) == [
        "pipeline action deploy-model has no alarm on AWS/Lambda AsyncEventAge to the alert topic (it has no on-failure destination)",
        "pipeline action test-model has no alarm on AWS/Lambda AsyncEventsDropped to the alert topic (it has no on-failure destination)",
    ]
