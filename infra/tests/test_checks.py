#!/usr/bin/env python3
"""Tests of the offline checks themselves: each must catch what it exists to catch, and
pass the real templates. Plain asserts and a runner of its own (no pytest in the venv).

usage: test_checks.py
"""

from __future__ import annotations

import copy
import json
import sys
import tempfile
import textwrap
import traceback
from pathlib import Path
from typing import Callable

INFRA = Path(__file__).resolve().parent.parent
sys.dont_write_bytecode = True  # no __pycache__ in the work tree
sys.path.insert(0, str(INFRA))

import cfn  # noqa: E402
import check_drift  # noqa: E402
import check_policies  # noqa: E402
import check_sam_transform  # noqa: E402

TESTS: list[Callable[[], None]] = []


def test(fn: Callable[[], None]) -> Callable[[], None]:
    TESTS.append(fn)
    return fn


def findings(yaml_text: str, name: str = "fixture.yaml") -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_text(textwrap.dedent(yaml_text))
        _, found = check_policies.check_template(path)
    return [str(f) for f in found]


def role(statement: str, trust: str | None = None) -> str:
    """A template with one role whose policy has `statement` (YAML, indented 14)."""
    trust = trust or """
              - Effect: Allow
                Principal:
                  Service: lambda.amazonaws.com
                Action: sts:AssumeRole"""
    return f"""
        AWSTemplateFormatVersion: "2010-09-09"
        Parameters:
          Operators:
            Type: CommaDelimitedList
            Default: ""
          Constrained:
            Type: CommaDelimitedList
            Default: ""
            AllowedPattern: "^(arn:aws[a-z-]*:iam::[0-9]{{12}}:role/[A-Za-z0-9+=,.@_/-]+)?$"
        Resources:
          R:
            Type: AWS::IAM::Role
            Properties:
              AssumeRolePolicyDocument:
                Version: "2012-10-17"
                Statement:{textwrap.indent(textwrap.dedent(trust), " " * 16)}
              Policies:
                - PolicyName: p
                  PolicyDocument:
                    Version: "2012-10-17"
                    Statement:
{textwrap.indent(textwrap.dedent(statement).strip(), " " * 22)}
        """


def resource_policy(kind: str, statement: str) -> str:
    prop = {"AWS::S3::BucketPolicy": "Bucket: b", "AWS::SQS::QueuePolicy": "Queues: [q]"}[kind]
    return f"""
        AWSTemplateFormatVersion: "2010-09-09"
        Resources:
          P:
            Type: {kind}
            Properties:
              {prop}
              PolicyDocument:
                Version: "2012-10-17"
                Statement:
{textwrap.indent(textwrap.dedent(statement).strip(), " " * 18)}
        """


# ------------------------------------------------------------------ policy check


@test
def overbroad_fixture_is_caught() -> None:
    _, found = check_policies.check_template(INFRA / "tests" / "overbroad.yaml")
    assert any('Action "*"' in str(f) for f in found), found


@test
def real_templates_pass_the_policy_check() -> None:
    for path in cfn.TEMPLATES:
        count, found = check_policies.check_template(path)
        assert count > 0, f"{path.name}: no statement was checked"
        assert not found, [str(f) for f in found]


@test
def service_wildcard_is_caught() -> None:
    found = findings(role("""
        - Effect: Allow
          Action: s3:*
          Resource: arn:aws:s3:::bucket/*
    """))
    assert any("wildcard action s3:*" in f for f in found), found


@test
def star_resource_is_caught_unless_the_action_takes_none() -> None:
    found = findings(role("""
        - Effect: Allow
          Action: [s3:GetObject, codepipeline:PutJobSuccessResult]
          Resource: "*"
    """))
    assert any("s3:GetObject" in f and "narrower" in f for f in found), found
    assert not any("codepipeline:PutJobSuccessResult" in f for f in found), found
    assert not findings(role("""
        - Effect: Allow
          Action: codepipeline:PutJobFailureResult
          Resource: "*"
    """))


@test
def arn_with_star_resource_part_is_caught() -> None:
    found = findings(role("""
        - Effect: Allow
          Action: s3:GetObject
          Resource: !Sub arn:${AWS::Partition}:s3:::*
    """))
    assert any("narrower" in f for f in found), found


@test
def unknown_and_negated_actions_are_caught() -> None:
    found = findings(role("""
        - Effect: Allow
          Action: s3:GetObjects
          Resource: arn:aws:s3:::bucket/*
        - Effect: Allow
          NotAction: iam:*
          Resource: arn:aws:s3:::bucket/*
    """))
    assert any("unknown action s3:GetObjects" in f for f in found), found
    assert any("NotAction" in f for f in found), found


@test
def wide_deny_is_allowed() -> None:
    assert not findings(resource_policy("AWS::S3::BucketPolicy", """
        - Effect: Deny
          Principal: "*"
          Action: s3:*
          Resource: arn:aws:s3:::b/*
          Condition:
            Bool:
              aws:SecureTransport: "false"
    """))


@test
def trust_must_name_an_exact_role() -> None:
    for principal in ("arn:aws:iam::123456789012:root", "arn:aws:iam::123456789012:role/*", "123456789012", '"*"'):
        found = findings(role("""
            - Effect: Allow
              Action: s3:GetObject
              Resource: arn:aws:s3:::b/*
        """, trust=f"""
            - Effect: Allow
              Principal:
                AWS: {principal}
              Action: sts:AssumeRole"""))
        assert any("exact role ARN" in f for f in found), (principal, found)
    assert not findings(role("""
        - Effect: Allow
          Action: s3:GetObject
          Resource: arn:aws:s3:::b/*
    """, trust="""
        - Effect: Allow
          Principal:
            AWS: !Sub arn:${AWS::Partition}:iam::123456789012:role/deployer
          Action: sts:AssumeRole"""))


@test
def trust_of_a_parameter_needs_a_role_only_pattern() -> None:
    statement = """
        - Effect: Allow
          Action: s3:GetObject
          Resource: arn:aws:s3:::b/*
    """
    unconstrained = findings(role(statement, trust="""
        - Effect: Allow
          Principal:
            AWS: !Ref Operators
          Action: sts:AssumeRole"""))
    assert any("exact role ARN" in f for f in unconstrained), unconstrained
    assert not findings(role(statement, trust="""
        - Effect: Allow
          Principal:
            AWS: !Ref Constrained
          Action: sts:AssumeRole"""))


@test
def another_accounts_root_needs_exact_principal_arns() -> None:
    base = """
        - Effect: Allow
          Principal:
            AWS: arn:aws:iam::333333333333:root
          Action: s3:GetObject
          Resource: arn:aws:s3:::b/*
    """
    assert any("whole account" in f for f in findings(resource_policy("AWS::S3::BucketPolicy", base)))
    exact = base + """
          Condition:
            ArnEquals:
              aws:PrincipalArn: arn:aws:iam::333333333333:role/runner
    """
    assert not findings(resource_policy("AWS::S3::BucketPolicy", exact))
    wildcard = base + """
          Condition:
            ArnLike:
              aws:PrincipalArn: arn:aws:iam::333333333333:role/*
    """
    assert any("whole account" in f for f in findings(resource_policy("AWS::S3::BucketPolicy", wildcard)))


@test
def everyone_must_be_narrowed_to_the_organization() -> None:
    open_bus = """
        AWSTemplateFormatVersion: "2010-09-09"
        Resources:
          Bus:
            Type: AWS::Events::EventBus
            Properties:
              Name: b
          P:
            Type: AWS::Events::EventBusPolicy
            Properties:
              EventBusName: b
              StatementId: s
              Statement:
                Effect: Allow
                Principal: "*"
                Action: events:PutEvents
                Resource: !GetAtt Bus.Arn
    """
    assert any('Principal "*"' in f for f in findings(open_bus))
    org = open_bus + """
                Condition:
                  StringEquals:
                    aws:PrincipalOrgID: o-abcdefghij
    """
    assert not findings(org)


@test
def service_principal_of_a_resource_policy_names_its_source() -> None:
    statement = """
        - Effect: Allow
          Principal:
            Service: events.amazonaws.com
          Action: sqs:SendMessage
          Resource: arn:aws:sqs:us-east-1:222222222222:q
    """
    assert any("confused deputy" in f for f in findings(resource_policy("AWS::SQS::QueuePolicy", statement)))
    narrowed = statement + """
          Condition:
            ArnEquals:
              aws:SourceArn: arn:aws:events:us-east-1:222222222222:rule/r
    """
    assert not findings(resource_policy("AWS::SQS::QueuePolicy", narrowed))


@test
def lambda_permission_names_its_source() -> None:
    found = findings("""
        AWSTemplateFormatVersion: "2010-09-09"
        Resources:
          P:
            Type: AWS::Lambda::Permission
            Properties:
              FunctionName: f
              Action: lambda:InvokeFunction
              Principal: events.amazonaws.com
    """)
    assert any("without SourceArn" in f for f in found), found


@test
def managed_policies_cannot_be_checked() -> None:
    found = findings("""
        AWSTemplateFormatVersion: "2010-09-09"
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
              ManagedPolicyArns: [arn:aws:iam::aws:policy/AdministratorAccess]
    """)
    assert any("cannot be checked" in f for f in found), found


@test
def sam_generated_policies_are_checked() -> None:
    found = findings("""
        AWSTemplateFormatVersion: "2010-09-09"
        Transform: AWS::Serverless-2016-10-31
        Resources:
          F:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: .
              Runtime: provided.al2023
              Handler: bootstrap
              Policies:
                - Statement:
                    - Effect: Allow
                      Action: dynamodb:*
                      Resource: "*"
    """)
    # SAM's generated role also attaches a managed policy (basic execution): both are reported.
    assert any("wildcard action dynamodb:*" in f for f in found), found
    assert any("cannot be checked" in f for f in found), found


@test
def policies_built_by_a_state_machine_are_checked() -> None:
    template = """
        AWSTemplateFormatVersion: "2010-09-09"
        Resources:
          M:
            Type: AWS::StepFunctions::StateMachine
            Properties:
              RoleArn: arn:aws:iam::222222222222:role/r
              DefinitionSubstitutions:
                Other: "333333333333"
              Definition:
                QueryLanguage: JSONata
                StartAt: Put
                States:
                  Put:
                    Type: Task
                    Resource: arn:aws:states:::aws-sdk:sagemaker:putModelPackageGroupPolicy
                    Arguments:
                      ModelPackageGroupName: "{% $states.input.detail.ModelPackageGroupName %}"
                      ResourcePolicy: >-
                        {% $string({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                        "Principal": {"AWS": "arn:aws:iam::${Other}:root"}, "Action": "sagemaker:DescribeModelPackage",
                        "Resource": "arn:aws:sagemaker:us-east-1:222222222222:model-package/" & $states.input.detail.ModelPackageGroupName & "/*"}]}) %}
                    End: true
    """
    found = findings(template)
    assert any("M state Put" in f and "whole account" in f for f in found), found


# ------------------------------------------------------------------ SAM transform


@test
def real_templates_translate_offline() -> None:
    for path in cfn.TEMPLATES:
        output, error = check_sam_transform.transform(path)
        assert error is None and output is not None, error
        assert not [r for r in output["Resources"].values() if r["Type"].startswith("AWS::Serverless::")]


@test
def a_broken_sam_template_fails_the_transform() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "broken.yaml"
        path.write_text(textwrap.dedent("""
            AWSTemplateFormatVersion: "2010-09-09"
            Transform: AWS::Serverless-2016-10-31
            Resources:
              F:
                Type: AWS::Serverless::Function
                Properties:
                  CodeUri: .
                  Runtime: provided.al2023
                  Handler: bootstrap
                  Events:
                    E:
                      Type: NoSuchEventSource
        """))
        output, error = check_sam_transform.transform(path)
    assert output is None and error, error


@test
def a_stackset_template_must_not_use_a_transform() -> None:
    source = (INFRA / "dev-account.yaml").read_text()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dev-account.yaml"
        path.write_text(source.replace('AWSTemplateFormatVersion: "2010-09-09"\n',
                                       'AWSTemplateFormatVersion: "2010-09-09"\nTransform: AWS::Serverless-2016-10-31\n', 1))
        _, error = check_sam_transform.transform(path)
    assert error and "StackSet" in error, error


# ------------------------------------------------------------------ drift check


@test
def the_real_tree_has_no_drift() -> None:
    report = check_drift.run()
    assert not report.errors, report.errors


@test
def a_pending_function_that_now_exists_fails() -> None:
    report = check_drift.Report()
    check_drift.function_drift({"a", "b"}, {"a", "b"}, ["b"], report)
    assert any("remove it from the list" in e for e in report.errors), report.errors


@test
def a_pending_function_must_stay_in_a_template() -> None:
    report = check_drift.Report()
    check_drift.function_drift({"a"}, {"a"}, ["gone"], report)
    assert any("pending function gone is in no template" in e for e in report.errors), report.errors


@test
def functions_missing_on_either_side_fail_unless_pending() -> None:
    report = check_drift.Report()
    check_drift.function_drift({"a", "designed"}, {"a", "orphan"}, [], report)
    assert any("designed of the templates has no crate" in e for e in report.errors), report.errors
    assert any("crate functions/orphan is a function of no template" in e for e in report.errors), report.errors
    report = check_drift.Report()
    check_drift.function_drift({"a", "designed"}, {"a"}, ["designed"], report)
    assert not report.errors and any("pending: designed" in n for n in report.notes), (report.errors, report.notes)


@test
def environment_drift_fails_both_ways() -> None:
    central = cfn.load(INFRA / "central-account.yaml")
    resource = copy.deepcopy(central["Resources"]["PromoteModelFunction"])
    variables = resource["Properties"]["Environment"]["Variables"]
    del variables["SOURCE_ACCOUNTS"]
    variables["UNUSED_SETTING"] = "x"
    report = check_drift.Report()
    check_drift.check_environment("promote-model", resource, {}, check_drift.ROOT / "functions" / "promote-model", report)
    assert any("reads SOURCE_ACCOUNTS" in e for e in report.errors), report.errors
    assert any("sets UNUSED_SETTING" in e for e in report.errors), report.errors


@test
def a_timeout_the_code_states_unlike_the_templates_fails() -> None:
    central = cfn.load(INFRA / "central-account.yaml")
    for name, logical in (("test-model", "TestModelFunction"), ("deploy-model", "DeployModelFunction")):
        resource = copy.deepcopy(central["Resources"][logical])
        crate = check_drift.ROOT / "functions" / name
        report = check_drift.Report()
        check_drift.check_timeout(name, resource, {}, crate, report)
        assert not report.errors, report.errors
        resource["Properties"]["Timeout"] += 60
        check_drift.check_timeout(name, resource, {}, crate, report)
        assert any(e.startswith(f"{name}: Timeout: the template says") for e in report.errors), report.errors


@test
def a_deploy_role_reaching_beyond_the_service_names_fails() -> None:
    target = cfn.load(INFRA / "target-account.yaml")
    statement = target["Resources"]["DeployRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][0]
    statement["Resource"][0] = {"Fn::Sub": "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:model/*"}
    report = check_drift.Report()
    check_drift.check_hosting_scope(target, "promoted-", report)
    assert report.errors == [
        "target: arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:model/* is not limited to the names starting 'promoted-'"
    ], report.errors


@test
def pipeline_drift_fails() -> None:
    central = cfn.load(INFRA / "central-account.yaml")
    names = json.loads((INFRA / "names.json").read_text())
    definition = json.loads((INFRA / "pipeline.json").read_text())
    swapped = copy.deepcopy(definition)
    swapped["stages"][0], swapped["stages"][1] = swapped["stages"][1], swapped["stages"][0]
    report = check_drift.Report()
    check_drift.check_pipeline(central, swapped, names, report)
    assert any("pipeline stages" in e for e in report.errors), report.errors
    renamed = copy.deepcopy(definition)
    renamed["variable"] = "PackageArn"
    report = check_drift.Report()
    check_drift.check_pipeline(central, renamed, names, report)
    assert any("pipeline variables" in e for e in report.errors), report.errors
    assert any("model_package_arn" in e for e in report.errors), report.errors


@test
def name_drift_fails() -> None:
    templates = {path.name: cfn.load(path) for path in cfn.TEMPLATES}
    names = json.loads((INFRA / "names.json").read_text())
    changed = copy.deepcopy(names)
    changed["event_bus"] = "another-bus"
    changed["roles"]["deploy"] = "another-deploy-role"
    changed["rollback_alarms"] = ["x"]
    report = check_drift.Report()
    check_drift.check_names(templates, changed, report)
    text = "\n".join(report.errors)
    for what in ("central EventBusName", "dev CentralEventBusName", "target DeployRoleName", "target rollback alarms"):
        assert what in text, (what, report.errors)


@test
def the_group_policy_state_machine_is_a_checked_rule_target() -> None:
    central = cfn.load(INFRA / "central-account.yaml")
    del central["Resources"]["GroupPolicyRule"]["Properties"]["Targets"][0]["DeadLetterConfig"]
    report = check_drift.Report()
    check_drift.check_rules(central, {"deploy-model", "test-model"}, report)
    assert report.errors == ["rule GroupPolicyRule: target state machine GroupPolicyStateMachine has no dead-letter queue or retry policy"], report.errors


@test
def a_rule_without_dead_letters_fails() -> None:
    central = cfn.load(INFRA / "central-account.yaml")
    del central["Resources"]["PromoteModelRule"]["Properties"]["Targets"][0]["DeadLetterConfig"]
    report = check_drift.Report()
    check_drift.check_rules(central, {"deploy-model", "test-model"}, report)
    assert any("no dead-letter queue" in e for e in report.errors), report.errors


@test
def every_function_has_an_explicit_event_invoke_config() -> None:
    central = cfn.load(INFRA / "central-account.yaml")
    del central["Resources"]["DeployModelFunction"]["Properties"]["EventInvokeConfig"]
    del central["Resources"]["TestModelFunction"]["Properties"]["EventInvokeConfig"]["MaximumEventAgeInSeconds"]
    report = check_drift.Report()
    check_drift.check_rules(central, {"deploy-model", "test-model"}, report)
    assert any("deploy-model has no EventInvokeConfig" in e for e in report.errors), report.errors
    assert any("test-model: EventInvokeConfig has no explicit MaximumEventAgeInSeconds" in e for e in report.errors), report.errors


@test
def a_pipeline_action_must_not_dead_letter_its_job() -> None:
    central = cfn.load(INFRA / "central-account.yaml")
    central["Resources"]["TestModelFunction"]["Properties"]["EventInvokeConfig"]["DestinationConfig"] = {
        "OnFailure": {"Type": "SQS", "Destination": {"Fn::GetAtt": "PromoteModelDlq.Arn"}}
    }
    del central["Resources"]["RecordOutcomeFunction"]["Properties"]["EventInvokeConfig"]["DestinationConfig"]
    report = check_drift.Report()
    check_drift.check_rules(central, {"deploy-model", "test-model"}, report)
    assert any("test-model is a pipeline action" in e and "artifactCredentials" in e for e in report.errors), report.errors
    assert any("record-outcome is a rule target" in e for e in report.errors), report.errors


@test
def the_group_policy_rule_spares_groups_the_service_did_not_create() -> None:
    central = cfn.load(INFRA / "central-account.yaml")
    report = check_drift.Report()
    check_drift.check_group_policy_scope(central, check_drift.ROOT / "events", report)
    assert not report.errors, report.errors
    # The rule as it was: every model package state change of the central account.
    central["Resources"]["GroupPolicyRule"]["Properties"]["EventPattern"] = {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Model Package State Change"],
        "account": [{"Ref": "AWS::AccountId"}],
    }
    report = check_drift.Report()
    check_drift.check_group_policy_scope(central, check_drift.ROOT / "events", report)
    assert any("fires for group team-owned-group" in e for e in report.errors), report.errors
    # The lineage key the state machine reads must be the one promote-model writes.
    central = cfn.load(INFRA / "central-account.yaml")
    assign = central["Resources"]["GroupPolicyStateMachine"]["Properties"]["Definition"]["States"]["DescribeVersion"]["Assign"]
    assign["sourceAccount"] = assign["sourceAccount"].replace("promotion:source-account", "promotion:account")
    report = check_drift.Report()
    check_drift.check_group_policy_scope(central, check_drift.ROOT / "events", report)
    assert any("lineage key SOURCE_ACCOUNT" in e for e in report.errors), report.errors


@test
def the_group_policy_state_machine_skips_versions_it_did_not_promote() -> None:
    import jsonata

    states = cfn.load(INFRA / "central-account.yaml")["Resources"]["GroupPolicyStateMachine"]["Properties"]["Definition"]["States"]
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


@test
def a_reader_of_the_artifact_bucket_must_be_able_to_list_it() -> None:
    central = cfn.load(INFRA / "central-account.yaml")
    report = check_drift.Report()
    check_drift.check_missing_keys_are_404(central, report)
    assert not report.errors, report.errors
    policy = central["Resources"]["PromoteModelRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    policy["Statement"] = [s for s in policy["Statement"] if s.get("Sid") != "ListCentralArtifacts"]
    report = check_drift.Report()
    check_drift.check_missing_keys_are_404(central, report)
    assert report.errors == [
        "PromoteModelRole may HEAD artifact bucket objects but not s3:ListBucket the bucket: a missing key answers 403, not 404"
    ], report.errors


@test
def the_forwarding_role_has_one_name_source() -> None:
    templates = {path.name: cfn.load(path) for path in cfn.TEMPLATES}
    names = json.loads((INFRA / "names.json").read_text())
    changed = copy.deepcopy(templates)
    changed["central-account.yaml"]["Parameters"]["ForwardRoleName"]["Default"] = "another-forwarder"
    report = check_drift.Report()
    check_drift.check_names(changed, names, report)
    assert any("central ForwardRoleName (dev-account.yaml ForwardRoleName)" in e for e in report.errors), report.errors
    # The bus policy building the name from ServiceName again: equal at the defaults, not otherwise.
    changed = copy.deepcopy(templates)
    statement = changed["central-account.yaml"]["Resources"]["EventBusOrganizationPolicy"]["Properties"]["Statement"]
    statement["Condition"]["ArnLike"]["aws:PrincipalArn"] = {
        "Fn::Sub": "arn:${AWS::Partition}:iam::*:role/${ServiceName}-forward-approvals"
    }
    report = check_drift.Report()
    check_drift.check_names(changed, names, report)
    assert any("not the ForwardRoleName parameter" in e for e in report.errors), report.errors


@test
def the_dev_key_pattern_must_cover_the_model_artifacts() -> None:
    templates = {path.name: cfn.load(path) for path in cfn.TEMPLATES}
    names = json.loads((INFRA / "names.json").read_text())
    templates["dev-account.yaml"]["Parameters"]["ArtifactKeyPattern"]["Default"] = "models/*"
    report = check_drift.Report()
    check_drift.check_dev_artifact_keys(templates, INFRA / "samconfig.toml.example", check_drift.ROOT / "events", report)
    assert any("does not admit s3://dev-ml-artifacts-111111111111/churn-prediction/" in e for e in report.errors), report.errors
    assert any("DevArtifactObjectArns" in e for e in report.errors), report.errors
    report = check_drift.Report()
    check_drift.check_names(templates, names, report)
    assert any("dev ArtifactKeyPattern" in e for e in report.errors), report.errors


def approval_errors(change: Callable[[dict, dict], None]) -> list[str]:
    """The drift check's errors once `change(central, definition)` edited copies of both."""
    central = cfn.load(INFRA / "central-account.yaml")
    definition = json.loads((INFRA / "pipeline.json").read_text())
    change(central, definition)
    report = check_drift.Report()
    check_drift.check_pipeline(central, definition, json.loads((INFRA / "names.json").read_text()), report)
    return report.errors


def action(central: dict, name: str) -> dict:
    return next(s for s in central["Resources"]["Pipeline"]["Properties"]["Stages"] if s["Name"] == name)["Actions"][0]


@test
def the_prod_approval_links_the_evidence() -> None:
    assert not approval_errors(lambda central, definition: None)

    def generic(central: dict, definition: dict) -> None:
        config = action(central, "ApproveProd")["Configuration"]
        config["ExternalEntityLink"] = {"Fn::Sub": "https://s3.console.aws.amazon.com/s3/buckets/${ArtifactBucket}?prefix=reports/"}
        config["CustomData"] = "Deploy to prod?"

    errors = approval_errors(generic)
    assert any("ExternalEntityLink" in e and "not an https:// URL made with an output variable" in e for e in errors), errors
    assert any("CustomData does not name the version" in e for e in errors), errors
    assert any("does not show #{TestModel.ModelCardUrl}" in e for e in errors), errors

    def no_link(central: dict, definition: dict) -> None:
        del action(central, "ApproveProd")["Configuration"]["ExternalEntityLink"]

    assert any("ExternalEntityLink ''" in e for e in approval_errors(no_link))


@test
def the_prod_approval_reads_only_variables_test_model_publishes() -> None:
    def bare(central: dict, definition: dict) -> None:
        action(central, "ApproveProd")["Configuration"]["ExternalEntityLink"] = "#{TestModel.ReportKey}"

    assert any("not an https:// URL" in e for e in approval_errors(bare)), "a review URL must begin with https://"

    def misspelt(central: dict, definition: dict) -> None:
        config = action(central, "ApproveProd")["Configuration"]
        config["ExternalEntityLink"]["Fn::Sub"] = config["ExternalEntityLink"]["Fn::Sub"].replace("ReportKey", "ReportKy")

    errors = approval_errors(misspelt)
    assert any("#{TestModel.ReportKy} is no variable" in e for e in errors), errors
    assert any("ExternalEntityLink" in e and "not an https:// URL made with an output variable" in e for e in errors), errors

    def unnamed(central: dict, definition: dict) -> None:
        del action(central, "TestModel")["Namespace"]

    assert any("stage TestModel Namespace" in e for e in approval_errors(unnamed))

    def later(central: dict, definition: dict) -> None:
        stages = definition["stages"]
        stages[1]["namespace"] = "Later"
        stages[3]["namespace"], stages[3]["variables"] = "TestModel", stages[1].pop("variables")
        action(central, "DeployProd")["Namespace"] = "TestModel"
        action(central, "TestModel")["Namespace"] = "Later"

    errors = approval_errors(later)
    assert any("#{TestModel.ReportKey} is no variable" in e for e in errors), "published after the approval: " + repr(errors)


@test
def the_prod_approval_fits_codepipelines_limits_with_the_longest_values() -> None:
    def longer(central: dict, definition: dict) -> None:
        definition["stages"][1]["variables"]["ModelCardUrl"]["max_length"] = 250

    assert any("CustomData may resolve to 540 characters, more than 500" in e for e in approval_errors(longer))

    def huge(central: dict, definition: dict) -> None:
        definition["stages"][1]["variables"]["ReportKey"]["max_length"] = 900

    assert any("ExternalEntityLink may resolve to" in e and "more than 1000" in e for e in approval_errors(huge))


def main() -> int:
    passed = failed = 0
    for fn in TESTS:
        try:
            fn()
        except Exception:  # an assertion or a crash: either fails the test
            failed += 1
            print(f"FAIL {fn.__name__}")
            print(textwrap.indent(traceback.format_exc(), "    "))
        else:
            passed += 1
            print(f"ok   {fn.__name__}")
    print(f"infra: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
