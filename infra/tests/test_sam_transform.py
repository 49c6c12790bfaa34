"""check_sam_transform.py: the templates translate offline, a template the transform refuses
fails, a StackSet template stays plain; and cfn-lint still runs no SAM transform (the reason
the script remains: see its docstring)."""

from __future__ import annotations

import socket
import textwrap
from pathlib import Path

import pytest

import cfn
import check_sam_transform

INFRA = cfn.INFRA

SAM_FUNCTION = """
    AWSTemplateFormatVersion: "2010-09-09"
    Transform: AWS::Serverless-2016-10-31
    Resources:
      F:
        Type: AWS::Serverless::Function
        Properties:
          CodeUri: .
          Runtime: provided.al2023
          Handler: bootstrap
"""

# Templates the SAM transform (so CloudFormation) refuses, by what is wrong with them.
UNKNOWN_EVENT_TYPE = SAM_FUNCTION + """
          Events:
            E:
              Type: NoSuchEventSource
"""
# These pass cfn-lint's SAM schemas: only the translator refuses them.
ON_FAILURE_WITHOUT_DESTINATION = SAM_FUNCTION + """
          EventInvokeConfig:
            MaximumRetryAttempts: 0
            DestinationConfig:
              OnFailure:
                Type: Lambda
"""
DEPLOYMENT_PREFERENCE_WITHOUT_ALIAS = SAM_FUNCTION + """
          DeploymentPreference:
            Type: AllAtOnce
"""
ONLY_THE_TRANSFORM_REFUSES = {
    "on-failure-without-destination": (ON_FAILURE_WITHOUT_DESTINATION, "Destination is required"),
    "deployment-preference-without-alias": (DEPLOYMENT_PREFERENCE_WITHOUT_ALIAS, "requires AutoPublishAlias"),
}


def write(tmp_path: Path, text: str, name: str = "fixture.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("path", cfn.TEMPLATES, ids=lambda p: p.name)
def test_real_template_translates_offline_to_arm64_functions(path: Path) -> None:
    output, error = check_sam_transform.transform(path)
    assert error is None and output is not None, error
    assert not [r for r in output["Resources"].values() if r["Type"].startswith("AWS::Serverless::")]
    assert not check_sam_transform.not_arm64(output)


def test_sam_transform_refuses_an_unknown_event_type(tmp_path: Path) -> None:
    output, error = check_sam_transform.transform(write(tmp_path, UNKNOWN_EVENT_TYPE))
    assert output is None and error, error


@pytest.mark.parametrize("case", sorted(ONLY_THE_TRANSFORM_REFUSES))
def test_sam_transform_refuses_what_only_the_translator_checks(tmp_path: Path, case: str) -> None:
    text, reason = ONLY_THE_TRANSFORM_REFUSES[case]
    output, error = check_sam_transform.transform(write(tmp_path, text))
    assert output is None and error and reason in error, error


@pytest.mark.parametrize("case", sorted(ONLY_THE_TRANSFORM_REFUSES))
def test_cfn_lint_still_passes_what_only_the_sam_transform_refuses(case: str) -> None:
    """If this fails, cfn-lint checks the translation again: check_sam_transform.py may shrink."""
    from cfnlint.api import ManualArgs, lint

    text, _ = ONLY_THE_TRANSFORM_REFUSES[case]
    matches = lint(textwrap.dedent(text), config=ManualArgs(regions=["us-east-1"], include_checks=["I"]))
    assert not matches, f"cfn-lint now refuses {case}: {[str(m) for m in matches]}; see whether check_sam_transform.py is still needed"


def test_a_stackset_template_must_not_use_a_transform(tmp_path: Path) -> None:
    source = (INFRA / "dev-account.yaml").read_text()
    declaration = 'AWSTemplateFormatVersion: "2010-09-09"\n'
    assert declaration in source
    path = write(tmp_path, source.replace(declaration, declaration + "Transform: AWS::Serverless-2016-10-31\n", 1), "dev-account.yaml")
    _, error = check_sam_transform.transform(path)
    assert error and "StackSet" in error, error


def test_sam_transform_check_catches_a_function_that_is_not_arm64(tmp_path: Path) -> None:
    output, error = check_sam_transform.transform(write(tmp_path, SAM_FUNCTION + "          Architectures: [x86_64]\n"))
    assert error is None and output is not None, error
    assert check_sam_transform.not_arm64(output) == ["F"]


def test_sam_transform_runs_with_the_network_refused() -> None:
    with check_sam_transform.offline(), pytest.raises(OSError, match="offline"):
        socket.create_connection(("127.0.0.1", 9), timeout=1)
