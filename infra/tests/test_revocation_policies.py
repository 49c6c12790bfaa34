"""Who may carry a revocation where: record-outcome (on promote-model's ModelRevoked) stops the
revoked version's executions, rejects its prod approval and rolls the stage endpoints back, each
grant narrowed to that; promote-model, which reads the dev accounts, gets no way into the
pipeline or the stage accounts."""

from __future__ import annotations

from typing import Any

import cfn


def grants(template: dict[str, Any], role: str) -> dict[str, list[Any]]:
    """action -> the resources a role's own policies allow it on (as written, Fn::Sub text)."""
    resource = (template.get("Resources") or {})[role]
    out: dict[str, list[Any]] = {}
    for policy in (resource.get("Properties") or {}).get("Policies", []):
        for statement in cfn.as_list(policy["PolicyDocument"]["Statement"]):
            if statement.get("Effect") != "Allow":
                continue
            resources = [cfn.sub_text(r) or r for r in cfn.as_list(statement.get("Resource", []))]
            for action in cfn.as_list(statement.get("Action", [])):
                out.setdefault(action, []).extend(resources)
    return out


def getatt(value: Any) -> str:
    """`!GetAtt A.B` as `A.B`, whichever form the YAML loader gives."""
    target = value["Fn::GetAtt"]
    return target if isinstance(target, str) else ".".join(target)


PIPELINE = "arn:${AWS::Partition}:codepipeline:${AWS::Region}:${AWS::AccountId}:${PipelineName}"
DEPLOY_ROLES = [
    "arn:${AWS::Partition}:iam::${TestAccountId}:role/${DeployRoleName}",
    "arn:${AWS::Partition}:iam::${ProdAccountId}:role/${DeployRoleName}",
]


def test_record_outcome_may_stop_and_reject_in_this_pipeline_only_and_reach_the_two_deploy_roles(central: dict[str, Any]) -> None:
    allowed = grants(central, "RecordOutcomeRole")
    assert allowed["codepipeline:StopPipelineExecution"] == [PIPELINE]
    assert allowed["codepipeline:PutApprovalResult"] == [f"{PIPELINE}/ApproveProd/ApproveProd"], "the prod approval, no other action"
    assert sorted(allowed["sts:AssumeRole"]) == sorted(DEPLOY_ROLES)
    assert allowed["sns:Publish"] == [{"Ref": "ApprovalTopic"}]
    assert "codepipeline:StartPipelineExecution" not in allowed, "a revocation starts nothing"


def test_promote_model_gets_no_way_into_the_pipeline_or_the_stage_accounts(central: dict[str, Any]) -> None:
    allowed = grants(central, "PromoteModelRole")
    assert not [a for a in allowed if a.startswith("codepipeline:")], allowed.keys()
    assert all(":role/${SourceReadRoleName}" in r for r in allowed["sts:AssumeRole"]), allowed["sts:AssumeRole"]
    publish = [
        s
        for p in central["Resources"]["PromoteModelRole"]["Properties"]["Policies"]
        for s in p["PolicyDocument"]["Statement"]
        if "events:PutEvents" in cfn.as_list(s["Action"])
    ]
    assert [s["Condition"]["StringEquals"]["events:detail-type"] for s in publish] == [["ModelPromoted", "ModelRevoked"]]


def test_the_revocation_rule_takes_only_this_accounts_model_revoked_to_record_outcome_with_dead_letters(central: dict[str, Any]) -> None:
    rule = central["Resources"]["RevocationRule"]["Properties"]
    assert rule["EventBusName"] == {"Ref": "EventBus"}
    assert rule["EventPattern"] == {"source": ["model-promotion"], "detail-type": ["ModelRevoked"], "account": [{"Ref": "AWS::AccountId"}]}
    (target,) = rule["Targets"]
    assert getatt(target["Arn"]) == "RecordOutcomeFunction.Arn"
    assert getatt(target["DeadLetterConfig"]["Arn"]) == "RecordOutcomeDlq.Arn"
    permission = central["Resources"]["RevocationRulePermission"]["Properties"]
    assert getatt(permission["SourceArn"]) == "RevocationRule.Arn"
    assert permission["FunctionName"] == {"Ref": "RecordOutcomeFunction"}


def test_both_stage_accounts_trust_record_outcome_by_its_exact_role(templates: dict[str, dict[str, Any]], names: dict[str, Any]) -> None:
    target = templates["target-account.yaml"]
    trust = target["Resources"]["DeployRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    revocation = [s for s in trust if isinstance(s, dict) and s.get("Sid") == "CentralRevocation"]
    assert len(revocation) == 1, "unconditional: test and prod endpoints are both rolled back"
    principal = cfn.sub_text(revocation[0]["Principal"]["AWS"])
    assert principal == "arn:${AWS::Partition}:iam::${CentralAccountId}:role/${RevocationFunctionRoleName}"
    assert cfn.parameter_defaults(target)["RevocationFunctionRoleName"] == names["function_roles"]["record-outcome"]
