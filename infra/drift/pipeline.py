"""The pipeline vs infra/pipeline.json (stages, actions, functions, UserParameters, namespaces),
and the prod approval: it shows this version's evidence, the output variables earlier actions
publish, within CodePipeline's limits at their longest values."""

from __future__ import annotations

import json
import re
from typing import Any

import cfn
from drift.report import Report

# `#{Namespace.Name}`: a variable CodePipeline resolves in an action's configuration.
VARIABLE_REFERENCE = re.compile(r"#\{([A-Za-z0-9@_-]+)\.([A-Za-z0-9@_-]+)\}")
# The longest model package ARN a pipeline execution carries (start-deployment starts it with
# central ARNs only): arn:aws:sagemaker:{region, 14}:{account}:model-package/{group, 63}/{version}.
PACKAGE_ARN_MAX = len("arn:aws:sagemaker:") + 14 + len(":123456789012:model-package/") + 63 + len("/4294967295")
# Resolved lengths: the approval's comments (CustomData) and its link each within 1000, the most
# an action configuration value may hold (ActionConfigurationValue in the CodePipeline API). The
# comments were kept to 500 until they named the release fingerprint and the report's SHA-256.
APPROVAL_FIELD_MAX = {"CustomData": 1000, "ExternalEntityLink": 1000}
# A CloudFormation substitution (`${ArtifactBucket}`, `${AWS::Region}`) counts as the longest
# bucket name.
SUBSTITUTION = re.compile(r"\$\{[^}]+\}")
SUBSTITUTION_MAX = 63


def resolved_max(text: str, longest: dict[str, int]) -> int:
    """The length of `text` once every substitution and variable holds its longest value."""
    variables = sum(longest.get(f"{ns}.{name}", 0) for ns, name in VARIABLE_REFERENCE.findall(text))
    substitutions = SUBSTITUTION_MAX * len(SUBSTITUTION.findall(text))
    return len(SUBSTITUTION.sub("", VARIABLE_REFERENCE.sub("", text))) + variables + substitutions


def check_approval(name: str, config: dict[str, Any], longest: dict[str, int], version: str, report: Report) -> None:
    """The prod approval shows this version's evidence: the output variables of earlier actions."""
    texts = {field: cfn.sub_text(config.get(field)) or "" for field in APPROVAL_FIELD_MAX}
    link = texts["ExternalEntityLink"]
    outputs = [f"{ns}.{var}" for ns, var in VARIABLE_REFERENCE.findall(link) if ns != "variables" and f"{ns}.{var}" in longest]
    report.expect(
        link.startswith("https://") and bool(outputs),
        f"stage {name}: ExternalEntityLink {link!r} is not an https:// URL made with an output variable of an earlier action (this version's test report)",
    )
    report.expect(version in texts["CustomData"], f"stage {name}: CustomData does not name the version ({version})")
    referenced = {f"{ns}.{var}" for text in texts.values() for ns, var in VARIABLE_REFERENCE.findall(text)}
    for unknown in sorted(referenced - set(longest)):
        report.error(f"stage {name}: #{{{unknown}}} is no variable of the pipeline nor an output variable of an earlier action")
    for unused in sorted(set(longest) - referenced):
        report.error(f"stage {name}: the approval does not show #{{{unused}}}, which an earlier action publishes for it")
    for field, limit in APPROVAL_FIELD_MAX.items():
        length = resolved_max(texts[field], longest)
        report.expect(length <= limit, f"stage {name}: {field} may resolve to {length} characters, more than {limit}")


def check_pipeline(central: dict[str, Any], definition: dict[str, Any], names: dict[str, Any], report: Report) -> set[str]:
    """Returns the functions the pipeline invokes."""
    source = "infra/pipeline.json"
    pipelines = dict(cfn.resources(central, "AWS::CodePipeline::Pipeline"))
    if len(pipelines) != 1:
        report.error(f"central-account.yaml has {len(pipelines)} pipelines, expected one")
        return set()
    props = next(iter(pipelines.values()))["Properties"]
    functions = {
        logical: ((r.get("Metadata") or {}).get("BuildProperties") or {}).get("Binary", logical)
        for logical, r in cfn.resources(central, "AWS::Serverless::Function")
    }
    report.same("pipeline name", cfn.parameter_defaults(central).get("PipelineName"), definition["name"], source)
    report.same("pipeline name (names.json)", names["pipeline"], definition["name"], source)
    report.same("pipeline type", props.get("PipelineType"), "V2", "the design")
    variables = [v["Name"] for v in props.get("Variables", [])]
    report.same("pipeline variables", variables, [definition["variable"]], source)

    stages = props.get("Stages", [])
    if not stages or stages[0].get("Name") != "Source":
        report.error("the pipeline's first stage is not Source")
    else:
        stages = stages[1:]
    invoked: set[str] = set()
    version = "#{variables." + definition["variable"] + "}"
    # What an action may reference: the pipeline's variable and the output variables of the
    # actions before it, each with its longest value.
    longest = {f"variables.{definition['variable']}": PACKAGE_ARN_MAX}
    report.same("pipeline stages", [s["Name"] for s in stages], [s["name"] for s in definition["stages"]], source)
    for stage, wanted in zip(stages, definition["stages"]):
        actions = stage.get("Actions", [])
        if len(actions) != 1:
            report.error(f"stage {stage['Name']} has {len(actions)} actions, expected one")
            continue
        action = actions[0]
        report.same(f"stage {stage['Name']} action name", action.get("Name"), wanted["name"], source)
        kind = action.get("ActionTypeId", {})
        config = action.get("Configuration", {})
        report.same(f"stage {stage['Name']} Namespace", action.get("Namespace"), wanted.get("namespace"), source)
        if wanted["action"] == "approval":
            report.same(f"stage {stage['Name']} provider", (kind.get("Category"), kind.get("Provider")), ("Approval", "Manual"), source)
            report.same(f"stage {stage['Name']} notifies", config.get("NotificationArn"), {"Ref": "ApprovalTopic"}, "the design")
            check_approval(stage["Name"], config, longest, version, report)
            continue
        published = wanted.get("variables") or {}
        report.expect(not published or "namespace" in wanted, f"{source}: stage {stage['Name']} publishes variables without a namespace to read them under")
        for variable, limits in published.items():
            longest[f"{wanted.get('namespace')}.{variable}"] = limits["max_length"]
        report.same(f"stage {stage['Name']} provider", (kind.get("Category"), kind.get("Provider")), ("Invoke", "Lambda"), source)
        target = config.get("FunctionName", {})
        function = functions.get(target.get("Ref")) if isinstance(target, dict) else None
        report.same(f"stage {stage['Name']} function", function, wanted["action"], source)
        if function:
            invoked.add(function)
        try:
            parameters = json.loads(config.get("UserParameters", ""))
        except json.JSONDecodeError:
            report.error(f"stage {stage['Name']}: UserParameters is not JSON")
            continue
        report.same(f"stage {stage['Name']} UserParameters.stage", parameters.get("stage"), wanted.get("stage"), source)
        report.same(
            f"stage {stage['Name']} UserParameters.model_package_arn",
            parameters.get("model_package_arn"),
            version,
            source,
        )
    return invoked

