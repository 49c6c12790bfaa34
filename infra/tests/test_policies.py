"""The least-privilege policy check (check_policies.py) catches each kind of over-broad grant,
and passes the real templates."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Callable

import pytest

import cfn
import check_policies

INFRA = cfn.INFRA

Findings = Callable[[str], list[str]]


@pytest.fixture
def findings(tmp_path: Path) -> Findings:
    """The policy check's findings on a template given as YAML text."""

    def check(yaml_text: str) -> list[str]:
        path = tmp_path / "fixture.yaml"
        path.write_text(textwrap.dedent(yaml_text))
        _, found = check_policies.check_template(path)
        return [str(f) for f in found]

    return check


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


S3_READ = """
    - Effect: Allow
      Action: s3:GetObject
      Resource: arn:aws:s3:::b/*
"""


def test_policy_check_rejects_the_overbroad_fixture() -> None:
    _, found = check_policies.check_template(INFRA / "tests" / "overbroad.yaml")
    assert any('Action "*"' in str(f) for f in found), found


def test_policy_check_script_fails_on_the_overbroad_fixture() -> None:
    run = subprocess.run(
        [sys.executable, str(INFRA / "check_policies.py"), str(INFRA / "tests" / "overbroad.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 1 and 'Action "*"' in run.stdout, f"infra/tests/overbroad.yaml passed the policy check:\n{run.stdout}{run.stderr}"


@pytest.mark.parametrize("path", cfn.TEMPLATES, ids=lambda p: p.name)
def test_policy_check_passes_the_real_template(path: Path) -> None:
    count, found = check_policies.check_template(path)
    assert count > 0, f"{path.name}: no statement was checked"
    assert not found, [str(f) for f in found]


def test_policy_check_catches_a_service_wildcard_action(findings: Findings) -> None:
    found = findings(role("""
        - Effect: Allow
          Action: s3:*
          Resource: arn:aws:s3:::bucket/*
    """))
    assert any("wildcard action s3:*" in f for f in found), found


def test_policy_check_catches_a_star_resource_unless_the_action_takes_none(findings: Findings) -> None:
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


def test_policy_check_catches_an_arn_whose_resource_part_is_a_star(findings: Findings) -> None:
    found = findings(role("""
        - Effect: Allow
          Action: s3:GetObject
          Resource: !Sub arn:${AWS::Partition}:s3:::*
    """))
    assert any("narrower" in f for f in found), found


def test_policy_check_catches_unknown_and_negated_actions(findings: Findings) -> None:
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


def test_policy_check_allows_a_wide_deny(findings: Findings) -> None:
    assert not findings(resource_policy("AWS::S3::BucketPolicy", """
        - Effect: Deny
          Principal: "*"
          Action: s3:*
          Resource: arn:aws:s3:::b/*
          Condition:
            Bool:
              aws:SecureTransport: "false"
    """))


@pytest.mark.parametrize("principal", ["arn:aws:iam::123456789012:root", "arn:aws:iam::123456789012:role/*", "123456789012", '"*"'])
def test_policy_check_refuses_a_trust_that_names_no_exact_role(findings: Findings, principal: str) -> None:
    found = findings(role(S3_READ, trust=f"""
        - Effect: Allow
          Principal:
            AWS: {principal}
          Action: sts:AssumeRole"""))
    assert any("exact role ARN" in f for f in found), (principal, found)


def test_policy_check_accepts_a_trust_of_an_exact_role(findings: Findings) -> None:
    assert not findings(role(S3_READ, trust="""
        - Effect: Allow
          Principal:
            AWS: !Sub arn:${AWS::Partition}:iam::123456789012:role/deployer
          Action: sts:AssumeRole"""))


def test_policy_check_wants_a_trusted_parameter_constrained_to_role_arns(findings: Findings) -> None:
    unconstrained = findings(role(S3_READ, trust="""
        - Effect: Allow
          Principal:
            AWS: !Ref Operators
          Action: sts:AssumeRole"""))
    assert any("exact role ARN" in f for f in unconstrained), unconstrained
    assert not findings(role(S3_READ, trust="""
        - Effect: Allow
          Principal:
            AWS: !Ref Constrained
          Action: sts:AssumeRole"""))


def test_policy_check_wants_exact_principal_arns_for_another_accounts_root(findings: Findings) -> None:
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


def test_policy_check_wants_everyone_narrowed_to_the_organization(findings: Findings) -> None:
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


def test_policy_check_wants_a_service_principal_narrowed_to_its_source(findings: Findings) -> None:
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


def test_policy_check_wants_a_lambda_permission_to_name_its_source(findings: Findings) -> None:
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


def test_policy_check_reports_managed_policies_as_uncheckable(findings: Findings) -> None:
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


def test_policy_check_reads_the_policies_sam_generates(findings: Findings) -> None:
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


def test_policy_check_reads_the_policies_a_state_machine_builds(findings: Findings) -> None:
    found = findings("""
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
    """)
    assert any("M state Put" in f and "whole account" in f for f in found), found


# ------------------------------------------------------------------ append-only tables

APPEND_ONLY_DENY = """
            ResourcePolicy:
              PolicyDocument:
                Version: "2012-10-17"
                Statement:
                  - Effect: Deny
                    Principal: "*"
                    Action:
                      - dynamodb:UpdateItem
                      - dynamodb:DeleteItem
                      - dynamodb:BatchWriteItem
                      - dynamodb:PartiQLUpdate
                      - dynamodb:PartiQLDelete
                    Resource: !Sub arn:aws:dynamodb:${AWS::Region}:${AWS::AccountId}:table/audit"""


def audit_table(statement: str, deny: str = APPEND_ONLY_DENY) -> str:
    """A role with `statement` beside an AppendOnly table named by a parameter."""
    return role(statement).replace(
        "        Resources:\n",
        f"""        Resources:
          Audit:
            Type: AWS::DynamoDB::Table
            Metadata:
              AppendOnly: true
            Properties:
              TableName: !Ref AuditName
              BillingMode: PAY_PER_REQUEST
              AttributeDefinitions: [{{AttributeName: pk, AttributeType: S}}]
              KeySchema: [{{AttributeName: pk, KeyType: HASH}}]{textwrap.indent(textwrap.dedent(deny), " " * 14) if deny else ""}
""",
    ).replace("        Parameters:\n", "        Parameters:\n          AuditName:\n            Type: String\n            Default: audit\n")


def test_policy_check_lets_an_append_only_table_be_put_to_and_read(findings: Findings) -> None:
    assert findings(audit_table("""
        - Effect: Allow
          Action: [dynamodb:PutItem, dynamodb:GetItem, dynamodb:Query, dynamodb:Scan]
          Resource: !GetAtt Audit.Arn
    """)) == []


@pytest.mark.parametrize(
    "action, resource",
    [
        ("dynamodb:UpdateItem", "!GetAtt Audit.Arn"),
        ("dynamodb:DeleteItem", "!Sub ${Audit.Arn}"),
        ("dynamodb:BatchWriteItem", "!Sub arn:aws:dynamodb:us-east-1:222222222222:table/${AuditName}"),
        ("dynamodb:PartiQLUpdate", "arn:aws:dynamodb:us-east-1:222222222222:table/*"),
    ],
)
def test_policy_check_refuses_rewriting_or_removing_an_append_only_tables_items(findings: Findings, action: str, resource: str) -> None:
    found = findings(audit_table(f"""
        - Effect: Allow
          Action: [dynamodb:PutItem, {action}]
          Resource: {resource}
    """))
    assert any(f"{action} on the append-only table Audit" in f for f in found), found
    assert not any("dynamodb:PutItem on the append-only" in f for f in found), found


def test_policy_check_wants_an_append_only_table_to_deny_rewrites_to_everyone(findings: Findings) -> None:
    found = findings(audit_table("""
        - Effect: Allow
          Action: dynamodb:GetItem
          Resource: !GetAtt Audit.Arn
    """, deny=""))
    assert any("Audit: append-only table whose policy does not deny dynamodb:batchwriteitem, dynamodb:deleteitem" in f for f in found), found


def test_the_function_roles_may_only_read_and_put_to_the_audit_table() -> None:
    """What the central template grants on its audit table, role by role: a chained append reads
    the head and puts head, entry and identity (TransactWriteItems asks PutItem of each); the
    functions whose rollbacks look back over a model's past query its chain; the people's read
    policies read it; nobody may update or delete."""
    import check_sam_transform

    template, error = check_sam_transform.transform(INFRA / "central-account.yaml")
    assert template is not None, error
    assert [name for name, _ in check_policies.append_only_tables(template)] == ["AuditTable"]
    granted: dict[str, set[str]] = {}
    for where, kind, document in check_policies.documents(template):
        for statement in check_policies.statements(document) if document else []:
            resources = cfn.as_list(statement.get("Resource", []))
            if statement.get("Effect") == "Allow" and any(check_policies.names_table(r, "AuditTable", "AuditTableName") for r in resources):
                actions = {a.lower() for a in cfn.as_list(statement["Action"]) if a.lower().startswith("dynamodb:")}
                if actions:
                    granted.setdefault(where.split(" ")[0], set()).update(actions)
    appending = {f"{name}Role" for name in ("PromoteModel", "StartDeployment", "DeployModel")}
    looking_back = {"TestModelRole", "RecordOutcomeRole"}  # a rollback's look back reads the chain
    functions = appending | looking_back
    assert {role: actions for role, actions in granted.items() if role in functions} == {
        **{role: {"dynamodb:getitem", "dynamodb:putitem"} for role in appending},
        **{role: {"dynamodb:getitem", "dynamodb:putitem", "dynamodb:query"} for role in looking_back},
    }
    assert granted["MlEngineerPolicy"] == granted["ProdApproverPolicy"] == {"dynamodb:getitem", "dynamodb:query", "dynamodb:scan"}
    assert set(granted) == functions | {"MlEngineerPolicy", "ProdApproverPolicy"}, granted
