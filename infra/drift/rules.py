"""Rules and asynchronous invocations: every rule targets a function or state machine of the
template with a dead-letter queue, every function is a rule target or a pipeline action with an
explicit EventInvokeConfig, and the group-policy rule fires only for the service's own groups."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import cfn
from drift import rust
from drift.report import LOCAL_ACCOUNTS, LOCAL_PSEUDO, Report


def check_rules(central: dict[str, Any], invoked: set[str], report: Report) -> None:
    functions = {
        logical: ((r.get("Metadata") or {}).get("BuildProperties") or {}).get("Binary", logical)
        for logical, r in cfn.resources(central, "AWS::Serverless::Function")
    }
    state_machines = {logical for logical, _ in cfn.resources(central, "AWS::StepFunctions::StateMachine")}
    targeted: set[str] = set()
    for logical, rule in cfn.resources(central, "AWS::Events::Rule"):
        for target in (rule.get("Properties") or {}).get("Targets", []):
            arn = target.get("Arn")
            ref = arn.get("Fn::GetAtt") if isinstance(arn, dict) else None
            ref = ref.split(".") if isinstance(ref, str) else ref
            if isinstance(arn, dict) and arn.get("Ref") in state_machines:
                name = f"state machine {arn['Ref']}"
            elif ref and ref[0] in functions:
                name = functions[ref[0]]
                targeted.add(name)
            else:
                report.error(f"rule {logical} targets {json.dumps(arn)}, which is no function or state machine of the template")
                continue
            if "DeadLetterConfig" not in target or "RetryPolicy" not in target:
                report.error(f"rule {logical}: target {name} has no dead-letter queue or retry policy")
    for function in sorted(set(functions.values()) - targeted - invoked):
        report.error(f"function {function} is neither a rule target nor a pipeline action")
    check_invoke_configs(central, functions, targeted, invoked, report)
    check_async_alarms(central, functions, invoked, report)
    report.notes.append("rule targets: " + ", ".join(sorted(targeted)) + "; pipeline actions: " + ", ".join(sorted(invoked)))


def check_invoke_configs(
    central: dict[str, Any], functions: dict[str, str], targeted: set[str], invoked: set[str], report: Report
) -> None:
    """Every function is invoked asynchronously (EventBridge or CodePipeline): its retries and
    event age are explicit; a rule's function dead-letters to SQS; a pipeline action does not
    (its event carries the job's artifactCredentials, which must never be stored)."""
    for logical, resource in cfn.resources(central, "AWS::Serverless::Function"):
        name = functions[logical]
        config = (resource.get("Properties") or {}).get("EventInvokeConfig")
        if not isinstance(config, dict):
            report.error(f"function {name} has no EventInvokeConfig (retries and event age of its asynchronous invocations)")
            continue
        for key in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds"):
            report.expect(key in config, f"function {name}: EventInvokeConfig has no explicit {key}")
        on_failure = ((config.get("DestinationConfig") or {}).get("OnFailure")) or None
        if name in invoked:
            report.expect(
                on_failure is None,
                f"function {name} is a pipeline action: no on-failure destination (its event carries artifactCredentials)",
            )
        elif name in targeted:
            report.expect(
                isinstance(on_failure, dict) and on_failure.get("Type") == "SQS" and "Destination" in on_failure,
                f"function {name} is a rule target: its failed events need an on-failure SQS destination",
            )


# What a pipeline action's asynchronous invocations are watched for, in place of the
# dead-letter queue it may not have: events Lambda dropped, and events long in its queue.
ASYNC_METRICS = ("AsyncEventsDropped", "AsyncEventAge")


def check_async_alarms(central: dict[str, Any], functions: dict[str, str], invoked: set[str], report: Report) -> None:
    """Each pipeline action has an alarm on each of ASYNC_METRICS, to the alert topic: with no
    on-failure destination, a dropped job event would otherwise show only as the action's
    timeout, an hour later."""
    watched: set[tuple[str, str]] = set()
    for _, alarm in cfn.resources(central, "AWS::CloudWatch::Alarm"):
        props = alarm.get("Properties") or {}
        if props.get("Namespace") != "AWS/Lambda" or props.get("MetricName") not in ASYNC_METRICS:
            continue
        if {"Ref": "AlertTopic"} not in cfn.as_list(props.get("AlarmActions", [])):
            continue
        for dimension in props.get("Dimensions") or []:
            value = dimension.get("Value")
            if dimension.get("Name") == "FunctionName" and isinstance(value, dict) and value.get("Ref") in functions:
                watched.add((functions[value["Ref"]], props["MetricName"]))
    for name in sorted(invoked):
        for metric in ASYNC_METRICS:
            report.expect(
                (name, metric) in watched,
                f"pipeline action {name} has no alarm on AWS/Lambda {metric} to the alert topic (it has no on-failure destination)",
            )


GROUP_POLICY_SAMPLE_ACCOUNTS = ["111111111111", "555555555555"]


def event_matches(pattern: Any, event: Any) -> bool:
    """EventBridge matching, for the forms the templates use: exact values, prefix and suffix."""
    if isinstance(pattern, dict):
        return isinstance(event, dict) and all(key in event and event_matches(sub, event[key]) for key, sub in pattern.items())
    values = event if isinstance(event, list) else [event]
    for wanted in pattern:
        for value in values:
            if isinstance(wanted, dict):
                if "prefix" in wanted and isinstance(value, str) and value.startswith(wanted["prefix"]):
                    return True
                if "suffix" in wanted and isinstance(value, str) and value.endswith(wanted["suffix"]):
                    return True
            elif wanted == value:
                return True
    return False


def rendered_pattern(rule: dict[str, Any], accounts: list[str]) -> Any:
    pattern = (rule.get("Properties") or {}).get("EventPattern")
    values = {**LOCAL_PSEUDO, "AWS::AccountId": LOCAL_ACCOUNTS["AWS::AccountId"], "DevAccountIds": accounts}
    rendered = cfn.substitute(pattern, values)
    return json.loads(rendered) if isinstance(rendered, str) else rendered


def check_group_policy_scope(central: dict[str, Any], events: Path, report: Report, root: Path = cfn.ROOT) -> None:
    """The rule that (re)writes a group's whole resource policy fires only for the service's
    groups, {group}-{dev account}: judged on the central sample event, renamed."""
    machines = {logical for logical, _ in cfn.resources(central, "AWS::StepFunctions::StateMachine")}
    rules = [
        (logical, rule)
        for logical, rule in cfn.resources(central, "AWS::Events::Rule")
        if any((t.get("Arn") or {}).get("Ref") in machines for t in (rule.get("Properties") or {}).get("Targets", []) if isinstance(t.get("Arn"), dict))
    ]
    if not rules:
        report.error("no rule starts the group-policy state machine")
        return
    # The state machine's lineage test reads the key promote-model writes (a constant of the
    # Rust domain code, wherever it lives under shared/).
    keys = rust.string_constants(root, "SOURCE_ACCOUNT")
    machine_text = json.dumps([r for _, r in cfn.resources(central, "AWS::StepFunctions::StateMachine")])
    if len({value for value, _ in keys}) != 1:
        report.error(f"expected one lineage key `const SOURCE_ACCOUNT: &str` under shared/, found {keys or 'none'}")
    else:
        value, where = keys[0]
        report.expect(
            f"`{value}`" in machine_text,
            f"the group-policy state machine does not read the lineage key SOURCE_ACCOUNT ({value!r}, {where})",
        )
    sample = json.loads((events / "sagemaker-central-approval.json").read_text())
    for logical, rule in rules:
        try:
            pattern = rendered_pattern(rule, GROUP_POLICY_SAMPLE_ACCOUNTS)
        except (TypeError, json.JSONDecodeError) as error:
            report.error(f"rule {logical}: its event pattern is not JSON with sample accounts: {error}")
            continue
        for account in GROUP_POLICY_SAMPLE_ACCOUNTS:
            event = copy.deepcopy(sample)
            event["detail"]["ModelPackageGroupName"] = f"churn-prediction-{account}"
            report.expect(event_matches(pattern, event), f"rule {logical} misses the service's group churn-prediction-{account}")
        for foreign in ("churn-prediction", "team-owned-group", "churn-prediction-999999999999"):
            event = copy.deepcopy(sample)
            event["detail"]["ModelPackageGroupName"] = foreign
            report.expect(
                not event_matches(pattern, event),
                f"rule {logical} fires for group {foreign}, which the service did not create: it would replace that group's policy",
            )
