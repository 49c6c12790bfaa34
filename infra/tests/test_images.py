"""Container images in the templates: the central repositories (immutable tags, scan on push),
the replication from the dev registries into them, and who may pull what: the stage execution
roles pull from the central registry and the allow-listed AWS registries only, never from a `*`
account; promote-model only reads the central registry."""

from __future__ import annotations

import copy
import json
import re
import textwrap
from pathlib import Path
from typing import Any, Iterator

import cfn
import check_policies
from drift import names as name_checks
from drift.report import Report

ECR_PULL = {"ecr:batchgetimage", "ecr:getdownloadurlforlayer", "ecr:batchchecklayeravailability"}


def role_statements(template: dict[str, Any], role: str) -> list[dict[str, Any]]:
    props = template["Resources"][role]["Properties"]
    return [s for p in props.get("Policies", []) for s in p["PolicyDocument"]["Statement"]]


def ecr_resources(template: dict[str, Any], statement: dict[str, Any]) -> Iterator[str]:
    """Each ECR resource of the statement as text: a list parameter's default element by element."""
    defaults = cfn.parameter_defaults(template)
    for resource in cfn.as_list(statement.get("Resource", [])):
        if isinstance(resource, dict) and set(resource) == {"Ref"}:
            yield from defaults[resource["Ref"]].split(",")
        else:
            yield cfn.sub_text(resource) or json.dumps(resource)


def ecr_statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, resource in cfn.resources(template, "AWS::IAM::Role"):
        for statement in role_statements(template, name):
            actions = [a.lower() for a in cfn.as_list(statement.get("Action", [])) if isinstance(a, str)]
            if any(a.startswith("ecr:") and a != "ecr:getauthorizationtoken" for a in actions):
                yield name, statement


def account_of(arn: str) -> str:
    """The account field of an ARN, `${...}` substitutions (which hold colons) kept whole."""
    guarded = re.sub(r"\$\{[^}]*\}", lambda m: m.group(0).replace(":", "\0"), arn)
    return guarded.split(":")[4].replace("\0", ":")


def test_no_role_of_any_template_reaches_an_ecr_registry_of_any_account(templates: dict[str, Any]) -> None:
    checked = 0
    for file, template in templates.items():
        for role, statement in ecr_statements(template):
            for arn in ecr_resources(template, statement):
                checked += 1
                assert arn.startswith("arn:") and account_of(arn) != "*", f"{file} {role} [{statement.get('Sid')}]: {arn}"
    assert checked >= 4, checked


def test_the_stage_execution_role_pulls_only_the_central_models_repositories_and_the_aws_allow_list(
    templates: dict[str, Any], names: dict[str, Any]
) -> None:
    target = templates["target-account.yaml"]
    pulls = [s for _, s in ecr_statements(target)]
    assert {role for role, _ in ecr_statements(target)} == {"SageMakerExecutionRole"}
    arns = [arn for s in pulls for arn in ecr_resources(target, s)]
    for statement in pulls:
        assert {a.lower() for a in cfn.as_list(statement["Action"])} <= ECR_PULL, statement
    central = [a for a in arns if account_of(a) == "${CentralAccountId}"]
    assert central == [f"arn:${{AWS::Partition}}:ecr:${{Region}}:${{CentralAccountId}}:repository/{names['image_repository_prefix']}/*"], arns
    aws = [a for a in arns if a not in central]
    assert sorted(account_of(a) for a in aws) == sorted(names["aws_image_registries"]), aws


def test_the_dev_read_role_resolves_tags_in_its_model_repositories_and_the_aws_allow_list_only(
    templates: dict[str, Any], names: dict[str, Any]
) -> None:
    dev = templates["dev-account.yaml"]
    statements = [s for _, s in ecr_statements(dev)]
    assert {role for role, _ in ecr_statements(dev)} == {"SourceReadRole"}
    assert all(cfn.as_list(s["Action"]) == ["ecr:BatchGetImage"] for s in statements), statements
    arns = [arn for s in statements for arn in ecr_resources(dev, s)]
    own = [a for a in arns if account_of(a) == "${AWS::AccountId}"]
    assert own == [f"arn:${{AWS::Partition}}:ecr:*:${{AWS::AccountId}}:repository/{names['image_repository_prefix']}/*"], arns
    assert sorted(account_of(a) for a in arns if a not in own) == sorted(names["aws_image_registries"])


def test_promote_model_only_reads_the_central_models_repositories(central: dict[str, Any], names: dict[str, Any]) -> None:
    statements = [s for role, s in ecr_statements(central) if role == "PromoteModelRole"]
    assert [cfn.as_list(s["Action"]) for s in statements] == [["ecr:DescribeImages"]]
    assert list(ecr_resources(central, statements[0])) == [
        f"arn:${{AWS::Partition}}:ecr:${{AWS::Region}}:${{AWS::AccountId}}:repository/{names['image_repository_prefix']}/*"
    ]
    assert [role for role, _ in ecr_statements(central)] == ["PromoteModelRole"], "no other central role touches ECR"


def test_the_dev_registry_replicates_the_model_repositories_to_the_central_registry(templates: dict[str, Any], names: dict[str, Any]) -> None:
    dev = templates["dev-account.yaml"]
    (_, replication), = cfn.resources(dev, "AWS::ECR::ReplicationConfiguration")
    (rule,) = replication["Properties"]["ReplicationConfiguration"]["Rules"]
    (destination,) = rule["Destinations"]
    assert destination["RegistryId"] == {"Ref": "CentralAccountId"}
    assert destination["Region"] == {"Fn::If": ["CentralInThisRegion", {"Ref": "AWS::Region"}, {"Ref": "CentralRegion"}]}
    assert rule["RepositoryFilters"] == [{"Filter": names["image_repository_prefix"] + "/", "FilterType": "PREFIX_MATCH"}]


def test_each_dev_account_may_replicate_only_into_its_own_models_repositories(central: dict[str, Any], names: dict[str, Any]) -> None:
    (_, policy), = cfn.resources(central, "AWS::ECR::RegistryPolicy")
    (statement,) = policy["Properties"]["PolicyText"]["Statement"]
    assert statement["Principal"] == {"AWS": {"Ref": "DevAccountIds"}}
    assert sorted(statement["Action"]) == ["ecr:CreateRepository", "ecr:ReplicateImage"]
    # Central groups are {group}-{dev account}: a repository name ends with its dev account.
    assert cfn.sub_text(statement["Resource"]) == (
        f"arn:${{AWS::Partition}}:ecr:${{AWS::Region}}:${{AWS::AccountId}}:repository/{names['image_repository_prefix']}/*-${{!aws:PrincipalAccount}}"
    )


def test_replicated_repositories_have_immutable_tags_are_scanned_on_push_and_pulled_by_the_stage_roles_only(
    central: dict[str, Any], names: dict[str, Any]
) -> None:
    prefix = names["image_repository_prefix"]
    (_, template), = cfn.resources(central, "AWS::ECR::RepositoryCreationTemplate")
    props = template["Properties"]
    assert (props["Prefix"], props["AppliedFor"], props["ImageTagMutability"]) == (prefix, ["REPLICATION"], "IMMUTABLE")
    values = {**cfn.parameter_defaults(central), **check_policies.SAMPLE_VALUES}
    policy = json.loads(cfn.substitute(props["RepositoryPolicy"], values))
    (pull,) = policy["Statement"]
    assert {a.lower() for a in pull["Action"]} == ECR_PULL
    assert sorted(pull["Condition"]["ArnEquals"]["aws:PrincipalArn"]) == [
        f"arn:aws:iam::{account}:role/{names['roles']['sagemaker_execution']}" for account in ("333333333333", "444444444444")
    ]
    (_, scanning), = cfn.resources(central, "AWS::ECR::RegistryScanningConfiguration")
    (rule,) = scanning["Properties"]["Rules"]
    assert rule == {"ScanFrequency": "SCAN_ON_PUSH", "RepositoryFilters": [{"Filter": f"{prefix}/*", "FilterType": "WILDCARD"}]}


def test_an_allow_list_that_differs_between_the_stacks_is_drift(templates: dict[str, Any], names: dict[str, Any]) -> None:
    changed = copy.deepcopy(templates)
    target = changed["target-account.yaml"]["Parameters"]["AwsImageRepositoryArns"]
    target["Default"] += ",arn:aws:ecr:*:999999999999:repository/*"
    report = Report()
    name_checks.check_names(changed, names, report)
    assert any("target AwsImageRepositoryArns" in e for e in report.errors), report.errors


def ecr_registry_policy(statement: str) -> str:
    return f"""
        AWSTemplateFormatVersion: "2010-09-09"
        Resources:
          P:
            Type: AWS::ECR::RegistryPolicy
            Properties:
              PolicyText:
                Version: "2012-10-17"
                Statement:
{textwrap.indent(textwrap.dedent(statement).strip(), " " * 18)}
        """


def findings_of(tmp_path: Path, yaml_text: str) -> list[str]:
    path = tmp_path / "fixture.yaml"
    path.write_text(textwrap.dedent(yaml_text))
    return [str(f) for f in check_policies.check_template(path)[1]]


def test_the_policy_check_admits_an_account_for_replication_into_a_prefix_only(tmp_path: Path) -> None:
    def statement(actions: str, resource: str) -> str:
        return f"""
            - Effect: Allow
              Principal:
                AWS: "111111111111"
              Action: {actions}
              Resource: {resource}
        """

    prefix = "arn:aws:ecr:us-east-1:222222222222:repository/model-promotion/*"
    assert not findings_of(tmp_path, ecr_registry_policy(statement("[ecr:ReplicateImage, ecr:CreateRepository]", prefix)))
    everything = statement("[ecr:ReplicateImage]", "arn:aws:ecr:us-east-1:222222222222:repository/*")
    assert any("whole account" in f for f in findings_of(tmp_path, ecr_registry_policy(everything)))
    pull = statement("[ecr:ReplicateImage, ecr:BatchGetImage]", prefix)
    assert any("whole account" in f for f in findings_of(tmp_path, ecr_registry_policy(pull)))
