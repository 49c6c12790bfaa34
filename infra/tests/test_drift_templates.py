"""The drift check within the templates: names vs infra/names.json, the hosting scope, rule
targets and dead letters, EventInvokeConfig, the group-policy rule and state machine, the
artifact bucket's readers, the dev ArtifactKeyPattern."""

from __future__ import annotations

import copy
from typing import Any

import cfn
from drift import artifacts, names as name_checks, rules
from drift.report import Report

INFRA, ROOT = cfn.INFRA, cfn.ROOT
PIPELINE_ACTIONS = {"deploy-model", "test-model"}


def rule_errors(central: dict[str, Any]) -> list[str]:
    report = Report()
    rules.check_rules(central, PIPELINE_ACTIONS, report)
    return report.errors


def name_errors(templates: dict[str, Any], names: dict[str, Any]) -> list[str]:
    report = Report()
    name_checks.check_names(templates, names, report)
    return report.errors


def test_a_deploy_role_reaching_beyond_the_service_names_fails() -> None:
    target = cfn.load(INFRA / "target-account.yaml")
    statement = target["Resources"]["DeployRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][0]
    statement["Resource"][0] = {"Fn::Sub": "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:model/*"}
    report = Report()
    name_checks.check_hosting_scope(target, "promoted-", report)
    assert report.errors == [
        "target: arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:model/* is not limited to the names starting 'promoted-'"
    ], report.errors


def test_name_drift_from_names_json_fails(templates: dict[str, Any], names: dict[str, Any]) -> None:
    changed = copy.deepcopy(names)
    changed["event_bus"] = "another-bus"
    changed["roles"]["deploy"] = "another-deploy-role"
    changed["rollback_alarms"] = ["x"]
    text = "\n".join(name_errors(templates, changed))
    for what in ("central EventBusName", "dev CentralEventBusName", "target DeployRoleName", "target rollback alarms"):
        assert what in text, (what, text)


def test_the_forwarding_role_has_one_name_source(templates: dict[str, Any], names: dict[str, Any]) -> None:
    changed = copy.deepcopy(templates)
    changed["central-account.yaml"]["Parameters"]["ForwardRoleName"]["Default"] = "another-forwarder"
    errors = name_errors(changed, names)
    assert any("central ForwardRoleName (dev-account.yaml ForwardRoleName)" in e for e in errors), errors
    # The bus policy building the name from ServiceName again: equal at the defaults, not otherwise.
    changed = copy.deepcopy(templates)
    statement = changed["central-account.yaml"]["Resources"]["EventBusOrganizationPolicy"]["Properties"]["Statement"]
    statement["Condition"]["ArnLike"]["aws:PrincipalArn"] = {
        "Fn::Sub": "arn:${AWS::Partition}:iam::*:role/${ServiceName}-forward-approvals"
    }
    errors = name_errors(changed, names)
    assert any("not the ForwardRoleName parameter" in e for e in errors), errors


def test_the_group_policy_state_machine_is_a_checked_rule_target(central: dict[str, Any]) -> None:
    del central["Resources"]["GroupPolicyRule"]["Properties"]["Targets"][0]["DeadLetterConfig"]
    errors = rule_errors(central)
    assert errors == ["rule GroupPolicyRule: target state machine GroupPolicyStateMachine has no dead-letter queue or retry policy"], errors


def test_a_rule_target_without_dead_letters_fails(central: dict[str, Any]) -> None:
    del central["Resources"]["PromoteModelRule"]["Properties"]["Targets"][0]["DeadLetterConfig"]
    errors = rule_errors(central)
    assert any("no dead-letter queue" in e for e in errors), errors


def test_every_function_needs_an_explicit_event_invoke_config(central: dict[str, Any]) -> None:
    del central["Resources"]["DeployModelFunction"]["Properties"]["EventInvokeConfig"]
    del central["Resources"]["TestModelFunction"]["Properties"]["EventInvokeConfig"]["MaximumEventAgeInSeconds"]
    errors = rule_errors(central)
    assert any("deploy-model has no EventInvokeConfig" in e for e in errors), errors
    assert any("test-model: EventInvokeConfig has no explicit MaximumEventAgeInSeconds" in e for e in errors), errors


def test_a_pipeline_action_must_not_dead_letter_its_job_and_a_rule_target_must(central: dict[str, Any]) -> None:
    central["Resources"]["TestModelFunction"]["Properties"]["EventInvokeConfig"]["DestinationConfig"] = {
        "OnFailure": {"Type": "SQS", "Destination": {"Fn::GetAtt": "PromoteModelDlq.Arn"}}
    }
    del central["Resources"]["RecordOutcomeFunction"]["Properties"]["EventInvokeConfig"]["DestinationConfig"]
    errors = rule_errors(central)
    assert any("test-model is a pipeline action" in e and "artifactCredentials" in e for e in errors), errors
    assert any("record-outcome is a rule target" in e for e in errors), errors


def group_policy_errors(central: dict[str, Any]) -> list[str]:
    report = Report()
    rules.check_group_policy_scope(central, ROOT / "events", report)
    return report.errors


def test_the_group_policy_rule_passes_as_it_is(central: dict[str, Any]) -> None:
    assert not group_policy_errors(central)


def test_a_group_policy_rule_firing_for_foreign_groups_fails(central: dict[str, Any]) -> None:
    # The rule as it was: every model package state change of the central account.
    central["Resources"]["GroupPolicyRule"]["Properties"]["EventPattern"] = {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Model Package State Change"],
        "account": [{"Ref": "AWS::AccountId"}],
    }
    errors = group_policy_errors(central)
    assert any("fires for group team-owned-group" in e for e in errors), errors


def test_the_group_policy_state_machine_must_read_the_lineage_key_promote_model_writes(central: dict[str, Any]) -> None:
    assign = central["Resources"]["GroupPolicyStateMachine"]["Properties"]["Definition"]["States"]["DescribeVersion"]["Assign"]
    assign["sourceAccount"] = assign["sourceAccount"].replace("promotion:source-account", "promotion:account")
    errors = group_policy_errors(central)
    assert any("lineage key SOURCE_ACCOUNT" in e for e in errors), errors


def test_the_group_policy_state_machine_skips_versions_it_did_not_promote(central: dict[str, Any]) -> None:
    import jsonata

    states = central["Resources"]["GroupPolicyStateMachine"]["Properties"]["Definition"]["States"]
    assign = states["DescribeVersion"]["Assign"]["sourceAccount"].strip()[2:-2]
    (choice,) = states["PromotedByTheService"]["Choices"]
    assert choice["Next"] == "PutModelPackageGroupPolicy" and states["PromotedByTheService"]["Default"] == "NotTheServicesGroup"

    def evaluate(expression: str, **bindings: object) -> object:
        query = jsonata.Jsonata(expression)
        frame = query.create_frame()
        for name, value in bindings.items():
            frame.bind(name, value)
        return query.evaluate(None, frame)

    def puts(group: str, metadata: dict[str, str] | None) -> bool:
        result = {} if metadata is None else {"CustomerMetadataProperties": metadata}
        account = evaluate(assign, states={"result": result})
        event = {"detail": {"ModelPackageGroupName": group}}
        return bool(evaluate(choice["Condition"].strip()[2:-2], states={"input": event}, sourceAccount=account))

    lineage = {"promotion:source-account": "111111111111"}
    assert puts("churn-prediction-111111111111", lineage)
    assert not puts("churn-prediction-111111111111", None)  # no lineage: not promoted by the service
    assert not puts("churn-prediction-111111111111", {"promotion:source-account": "555555555555"})
    assert not puts("team-owned-group", lineage)


def test_a_reader_of_the_artifact_bucket_must_be_able_to_list_it(central: dict[str, Any]) -> None:
    report = Report()
    artifacts.check_missing_keys_are_404(central, report)
    assert not report.errors, report.errors
    policy = central["Resources"]["PromoteModelRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    policy["Statement"] = [s for s in policy["Statement"] if s.get("Sid") != "ListCentralArtifacts"]
    report = Report()
    artifacts.check_missing_keys_are_404(central, report)
    assert report.errors == [
        "PromoteModelRole may HEAD artifact bucket objects but not s3:ListBucket the bucket: a missing key answers 403, not 404"
    ], report.errors


def test_the_dev_key_pattern_must_cover_the_model_artifacts(templates: dict[str, Any], names: dict[str, Any]) -> None:
    templates["dev-account.yaml"]["Parameters"]["ArtifactKeyPattern"]["Default"] = "models/*"
    report = Report()
    artifacts.check_dev_artifact_keys(templates, INFRA / "samconfig.toml.example", ROOT / "events", report)
    assert any("does not admit s3://dev-ml-artifacts-111111111111/churn-prediction/" in e for e in report.errors), report.errors
    assert any("DevArtifactObjectArns" in e for e in report.errors), report.errors
    errors = name_errors(templates, names)
    assert any("dev ArtifactKeyPattern" in e for e in errors), errors
