"""The organization guardrails (infra/guardrails.yaml): what the service control policies refuse
whom, as rendered with sample parameters, and the policy check's rules for them: each statement
a Deny sparing exact roles, none denying a role of the stacks what its policy grants, each
policy within the size Organizations takes. Each rule is shown failing on a template changed
to break it."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

import cfn
import check_policies
import scp
from drift import names as name_checks
from drift.report import Report

CENTRAL, TEST, PROD = scp.CENTRAL, scp.TEST, scp.PROD
ADMIN = f"arn:aws:iam::{CENTRAL}:role/aws-reserved/sso.amazonaws.com/us-east-1/AWSReservedSSO_AdministratorAccess_0123456789abcdef"
APPROVER = f"arn:aws:iam::{CENTRAL}:role/aws-reserved/sso.amazonaws.com/us-east-1/AWSReservedSSO_ModelPromotionProdApprover_0123456789abcdef"
PLATFORM = f"arn:aws:iam::{CENTRAL}:role/aws-reserved/sso.amazonaws.com/us-east-1/AWSReservedSSO_PlatformEngineer_0123456789abcdef"
PIPELINE = f"arn:aws:codepipeline:us-east-1:{CENTRAL}:model-promotion-deploy"


def role(account: str, name: str) -> str:
    return f"arn:aws:iam::{account}:role/{name}"


@pytest.fixture
def guardrails() -> dict[str, Any]:
    return cfn.load(cfn.INFRA / "guardrails.yaml")


def rendered(template: dict[str, Any]) -> dict[str, scp.Policy]:
    return {policy.logical: policy for policy in scp.policies(template)}


def refused(policy: scp.Policy, principal: str, action: str, resource: str) -> bool:
    """Whether the policy refuses the call: some statement denies it."""
    return any(scp.denies(s, principal, action, resource) for s in policy.content["Statement"])


def statements(template: dict[str, Any], policy: str) -> list[dict[str, Any]]:
    return template["Resources"][policy]["Properties"]["Content"]["Statement"]


def with_sid(template: dict[str, Any], policy: str, sid: str) -> dict[str, Any]:
    (statement,) = [s for s in statements(template, policy) if s["Sid"] == sid]
    return statement


def findings(tmp_path: Path, template: dict[str, Any]) -> list[str]:
    """The policy check's findings on a (changed) guardrails template, cross-checked against
    infra/'s central and target templates."""
    path = tmp_path / "guardrails.yaml"
    path.write_text(json.dumps(template))
    return [str(f) for f in check_policies.check_template(path)[1]]


# ------------------------------------------------------------------ what they refuse whom


def test_only_the_pipeline_role_invokes_the_pipeline_functions(guardrails: dict[str, Any]) -> None:
    central = rendered(guardrails)["CentralGuardrails"]
    for function in ("deploy-model", "test-model"):
        arn = f"arn:aws:lambda:us-east-1:{CENTRAL}:function:model-promotion-{function}"
        assert refused(central, ADMIN, "lambda:InvokeFunction", arn), function
        assert refused(central, ADMIN, "lambda:InvokeFunction", arn + ":$LATEST"), "a qualified invocation is the same door"
        assert refused(central, role(CENTRAL, "model-promotion-promote-model"), "lambda:InvokeFunction", arn)
        assert not refused(central, role(CENTRAL, "model-promotion-pipeline"), "lambda:InvokeFunction", arn)
    other = f"arn:aws:lambda:us-east-1:{CENTRAL}:function:another-teams-function"
    assert not refused(central, ADMIN, "lambda:InvokeFunction", other), "other teams' functions are not the guardrails' business"


def test_only_the_pipeline_functions_answer_jobs(guardrails: dict[str, Any]) -> None:
    central = rendered(guardrails)["CentralGuardrails"]
    for action in ("codepipeline:PutJobSuccessResult", "codepipeline:PutJobFailureResult"):
        assert refused(central, ADMIN, action, "*")
        assert refused(central, role(CENTRAL, "model-promotion-record-outcome"), action, "*")
        for function in ("deploy-model", "test-model"):
            assert not refused(central, role(CENTRAL, f"model-promotion-{function}"), action, "*")


def test_only_governance_and_a_revocation_answer_the_prod_approval(guardrails: dict[str, Any]) -> None:
    central = rendered(guardrails)["CentralGuardrails"]
    approval = f"{PIPELINE}/ApproveProd/ApproveProd"
    assert refused(central, ADMIN, "codepipeline:PutApprovalResult", approval)
    assert refused(central, PLATFORM, "codepipeline:PutApprovalResult", approval), "the platform deploys the pipeline, it does not approve"
    assert refused(central, role(CENTRAL, "model-promotion-test-model"), "codepipeline:PutApprovalResult", approval)
    assert not refused(central, APPROVER, "codepipeline:PutApprovalResult", approval)
    assert not refused(central, role(CENTRAL, "model-promotion-record-outcome"), "codepipeline:PutApprovalResult", approval)


def test_only_the_service_and_the_platform_drive_or_change_the_pipeline(guardrails: dict[str, Any]) -> None:
    central = rendered(guardrails)["CentralGuardrails"]
    for action in ("codepipeline:StartPipelineExecution", "codepipeline:StopPipelineExecution", "codepipeline:UpdatePipeline", "codepipeline:DeletePipeline"):
        assert refused(central, ADMIN, action, PIPELINE), action
        assert refused(central, APPROVER, action, PIPELINE), action
        assert not refused(central, PLATFORM, action, PIPELINE), action
    assert refused(central, ADMIN, "codepipeline:RetryStageExecution", f"{PIPELINE}/DeployProd")
    assert refused(central, ADMIN, "codepipeline:DisableStageTransition", f"{PIPELINE}/ApproveProd")
    assert not refused(central, role(CENTRAL, "model-promotion-start-deployment"), "codepipeline:StartPipelineExecution", PIPELINE)
    assert not refused(central, role(CENTRAL, "model-promotion-record-outcome"), "codepipeline:StopPipelineExecution", PIPELINE)


def test_only_the_platform_changes_the_functions_and_passes_or_changes_the_roles(guardrails: dict[str, Any]) -> None:
    central = rendered(guardrails)["CentralGuardrails"]
    function = f"arn:aws:lambda:us-east-1:{CENTRAL}:function:model-promotion-deploy-model"
    deploy_model = role(CENTRAL, "model-promotion-deploy-model")
    for principal, allowed in ((ADMIN, False), (role(CENTRAL, "model-promotion-promote-model"), False), (PLATFORM, True)):
        assert refused(central, principal, "lambda:UpdateFunctionCode", function) is not allowed
        assert refused(central, principal, "iam:PassRole", deploy_model) is not allowed
        assert refused(central, principal, "iam:UpdateAssumeRolePolicy", deploy_model) is not allowed
        assert refused(central, principal, "iam:AttachRolePolicy", deploy_model) is not allowed


def test_in_the_stage_accounts_only_the_deploy_role_makes_promoted_hosting_and_operators_only_repoint_it(guardrails: dict[str, Any]) -> None:
    stage = rendered(guardrails)["StageGuardrails"]
    for account in (TEST, PROD):
        deploy, rollback = role(account, "model-promotion-deploy"), role(account, "model-promotion-operator-rollback")
        admin = ADMIN.replace(CENTRAL, account)
        endpoint = f"arn:aws:sagemaker:us-east-1:{account}:endpoint/promoted-churn-111111111111-prod"
        config = f"arn:aws:sagemaker:us-east-1:{account}:endpoint-config/promoted-churn-111111111111-v1-prod"
        model = f"arn:aws:sagemaker:us-east-1:{account}:model/promoted-churn-111111111111-v1-prod"
        for action, resource in (
            ("sagemaker:CreateModel", model),
            ("sagemaker:CreateEndpointConfig", config),
            ("sagemaker:CreateEndpoint", endpoint),
            ("sagemaker:DeleteEndpoint", endpoint),
            ("sagemaker:DeleteEndpointConfig", config),
        ):
            assert refused(stage, admin, action, resource), (account, action)
            assert refused(stage, rollback, action, resource), (account, action, "the rollback role only repoints")
            assert not refused(stage, deploy, action, resource), (account, action)
        for principal, allowed in ((admin, False), (deploy, True), (rollback, True)):
            assert refused(stage, principal, "sagemaker:UpdateEndpoint", endpoint) is not allowed
        execution = role(account, "model-promotion-sagemaker-execution")
        assert refused(stage, admin, "iam:PassRole", execution)
        assert refused(stage, rollback, "iam:PassRole", execution)
        assert not refused(stage, deploy, "iam:PassRole", execution)
        other = f"arn:aws:sagemaker:us-east-1:{account}:endpoint/fraud-scoring"
        assert not refused(stage, admin, "sagemaker:UpdateEndpoint", other), "other teams' endpoints are not the guardrails' business"


def test_the_guardrails_deny_no_role_of_the_stacks_what_its_policy_grants(templates: dict[str, Any]) -> None:
    grants = scp.service_grants(templates["central-account.yaml"], templates["target-account.yaml"])
    assert {g.role for g in grants["central"]} >= {"PipelineRole", "DeployModelRole", "TestModelRole", "StartDeploymentRole", "RecordOutcomeRole"}
    assert {g.role for g in grants["prod"]} == {"SageMakerExecutionRole", "DeployRole", "OperatorRollbackRole"}
    assert scp.guardrail_findings(templates["guardrails.yaml"], templates["central-account.yaml"], templates["target-account.yaml"]) == []


def test_every_statement_is_a_deny_that_spares_named_roles(guardrails: dict[str, Any]) -> None:
    for policy in rendered(guardrails).values():
        for statement in policy.content["Statement"]:
            assert statement["Effect"] == "Deny", statement["Sid"]
            spared = scp.exceptions(statement)
            assert spared and all(":role/" in p and p.split(":")[4].isdigit() for p in spared), (statement["Sid"], spared)


# ------------------------------------------------------------------ the policy check's rules, broken


def test_the_policy_check_passes_the_guardrails(tmp_path: Path, guardrails: dict[str, Any]) -> None:
    assert findings(tmp_path, guardrails) == []


@pytest.mark.parametrize(
    ("policy", "sid", "spared", "denied"),
    [
        ("CentralGuardrails", "InvokePipelineFunctionsByThePipelineOnly", "-pipeline", "model-promotion-pipeline (PipelineRole [InvokeStageFunctions]"),
        ("CentralGuardrails", "AnswerPipelineJobsByTheFunctionsOnly", "-test-model", "model-promotion-test-model (TestModelRole [AnswerPipelineJobs]"),
        ("CentralGuardrails", "AnswerTheProdApprovalByGovernanceOnly", "-record-outcome", "model-promotion-record-outcome (RecordOutcomeRole [RejectRevokedApprovals]"),
        ("CentralGuardrails", "DriveThePipelineByTheServiceOnly", "-start-deployment", "model-promotion-start-deployment (StartDeploymentRole [StartThePipeline]"),
        ("StageGuardrails", "ChangePromotedHostingByTheServiceOnly", "${ProdAccountId}:role/${DeployRoleName}", "model-promotion-deploy (DeployRole [Hosting], prod)"),
        ("StageGuardrails", "RepointPromotedEndpointsByTheServiceAndOperatorsOnly", "${TestAccountId}:role/${OperatorRollbackRoleName}", "(OperatorRollbackRole [RepointPromotedEndpoints], test)"),
        ("StageGuardrails", "PassTheServicesRolesByTheDeployRoleOnly", "${TestAccountId}:role/${DeployRoleName}", "(DeployRole [PassTheExecutionRole], test)"),
    ],
)
def test_an_exception_removed_denies_a_role_what_it_needs(
    tmp_path: Path, guardrails: dict[str, Any], policy: str, sid: str, spared: str, denied: str
) -> None:
    changed = copy.deepcopy(guardrails)
    condition = with_sid(changed, policy, sid)["Condition"]["ArnNotLike"]
    condition["aws:PrincipalArn"] = remove_exception(condition["aws:PrincipalArn"], spared)
    found = findings(tmp_path, changed)
    assert any(f"[{sid}]: denies" in f and denied in f for f in found), found


def remove_exception(value: Any, fragment: str) -> Any:
    """The exception list without the ARN that holds `fragment` (in a list, or in the Fn::Join
    a Fn::Split makes the list of)."""
    if isinstance(value, list):
        kept = [v for v in value if fragment not in json.dumps(v)]
        assert len(kept) == len(value) - 1, (fragment, value)
        return kept
    if isinstance(value, dict) and "Fn::Split" in value:
        joined = copy.deepcopy(value)
        parts = joined["Fn::Split"][1]["Fn::Join"][1]
        joined["Fn::Split"][1]["Fn::Join"][1] = remove_exception(parts, fragment)
        return joined
    assert fragment in json.dumps(value), (fragment, value)
    return []


def test_a_statement_without_an_exception_fails(tmp_path: Path, guardrails: dict[str, Any]) -> None:
    changed = copy.deepcopy(guardrails)
    del with_sid(changed, "CentralGuardrails", "AnswerTheProdApprovalByGovernanceOnly")["Condition"]
    found = findings(tmp_path, changed)
    assert any("[AnswerTheProdApprovalByGovernanceOnly]: no principal exception" in f for f in found), found
    assert any("denies arn:aws:iam::222222222222:role/model-promotion-record-outcome" in f for f in found), found


@pytest.mark.parametrize(
    ("exception", "why"),
    [
        ("arn:aws:iam::*:role/model-promotion-pipeline", "name roles of an exact account"),
        ("arn:${AWS::Partition}:iam::${CentralAccountId}:role/*", "name roles of an exact account"),
        ("arn:${AWS::Partition}:iam::${CentralAccountId}:user/ops", "name roles of an exact account"),
    ],
)
def test_an_exception_that_spares_too_much_fails(tmp_path: Path, guardrails: dict[str, Any], exception: str, why: str) -> None:
    changed = copy.deepcopy(guardrails)
    with_sid(changed, "CentralGuardrails", "InvokePipelineFunctionsByThePipelineOnly")["Condition"]["ArnNotLike"]["aws:PrincipalArn"] = {"Fn::Sub": exception}
    found = findings(tmp_path, changed)
    assert any("[InvokePipelineFunctionsByThePipelineOnly]: exception" in f and why in f for f in found), found


def test_a_parameter_that_could_spare_everyone_fails(tmp_path: Path, guardrails: dict[str, Any]) -> None:
    changed = copy.deepcopy(guardrails)
    changed["Parameters"]["PlatformRoleArns"]["AllowedPattern"] = "^arn:aws:iam::[0-9*]{1,12}:role/.*$"
    found = findings(tmp_path, changed)
    assert any("exception !Ref PlatformRoleArns" in f for f in found), found


def test_an_allow_a_not_action_or_a_deny_on_everything_fails(tmp_path: Path, guardrails: dict[str, Any]) -> None:
    changed = copy.deepcopy(guardrails)
    with_sid(changed, "CentralGuardrails", "AnswerPipelineJobsByTheFunctionsOnly")["Effect"] = "Allow"
    invoke = with_sid(changed, "CentralGuardrails", "InvokePipelineFunctionsByThePipelineOnly")
    invoke["Resource"] = "*"
    hosting = with_sid(changed, "StageGuardrails", "ChangePromotedHostingByTheServiceOnly")
    hosting["NotAction"] = hosting.pop("Action")
    found = "\n".join(findings(tmp_path, changed))
    assert "[AnswerPipelineJobsByTheFunctionsOnly]: an SCP statement here must Deny" in found, found
    assert "[InvokePipelineFunctionsByThePipelineOnly]: Resource '*': a Deny on every resource" in found, found
    assert "[ChangePromotedHostingByTheServiceOnly]: NotAction in an SCP statement" in found, found


def test_a_policy_over_the_size_organizations_takes_fails(guardrails: dict[str, Any], templates: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    # The sample parameters (three platform patterns, one governance pattern, as long as IAM
    # Identity Center's) leave room: nine platform patterns still fit (docs/deploy.md).
    patterns = scp.GUARDRAIL_SAMPLES["PlatformRoleArns"]
    more = {**scp.GUARDRAIL_SAMPLES, "PlatformRoleArns": patterns * 3}
    assert all(scp.size(p) <= scp.MAX_SCP_BYTES for p in scp.policies(guardrails, more)), [scp.size(p) for p in scp.policies(guardrails, more)]
    monkeypatch.setattr(scp, "GUARDRAIL_SAMPLES", {**scp.GUARDRAIL_SAMPLES, "PlatformRoleArns": patterns * 10})
    found = scp.guardrail_findings(guardrails, templates["central-account.yaml"], templates["target-account.yaml"])
    assert any(f.startswith("CentralGuardrails: ") and "over the 5120 Organizations takes" in f for f in found), found


def test_a_guardrail_naming_another_pipeline_or_role_than_the_stacks_is_drift(templates: dict[str, Any], names: dict[str, Any]) -> None:
    changed = copy.deepcopy(templates)
    changed["guardrails.yaml"]["Parameters"]["PipelineName"]["Default"] = "another-pipeline"
    changed["guardrails.yaml"]["Parameters"]["OperatorRollbackRoleName"]["Default"] = "ops"
    changed["target-account.yaml"]["Resources"]["DeployRole"]["Properties"]["RoleName"] = "team-deployer"
    report = Report()
    name_checks.check_names(changed, names, report)
    text = "\n".join(report.errors)
    assert "guardrails PipelineName" in text and "guardrails OperatorRollbackRoleName" in text, text
    assert "DeployRole: role team-deployer is not named model-promotion-..." in text, text
