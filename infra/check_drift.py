#!/usr/bin/env python3
"""Drift check between the templates, the code and the local emulator's names.

Fails (exit 1) when
  * a function of the templates has no crate functions/<name>/Cargo.toml, or a crate has no
    function in the templates; functions designed but not written yet are listed in
    infra/pending-functions.txt, reported as pending, and must leave that list as soon as
    their crate exists (and must stay in a template while listed);
  * a function is not built the same way as the others (rust-cargolambda, its own binary,
    arm64, provided.al2023, bootstrap, the workspace as code);
  * a function's environment in the template and the variables its code reads differ, either
    way (a variable the code reads but the template does not set, or the reverse);
  * a function's code states a timeout (`const TIMEOUT`, the deadline of an invocation that
    reports none) other than its Timeout in the template;
  * STAGE_CONFIG is not the same for every deployment function, or its shape, roles or alarm
    names differ from shared/stage-config.local.json, the emulator's;
  * a name default (bus, table, bucket prefix, topic, pipeline, roles, alarms, event source
    and detail-type) differs from infra/names.json, which the emulator's provisioning reads;
  * the pipeline's stages after Source, their order, their functions and UserParameters
    differ from infra/pipeline.json, which the local pipeline driver runs;
  * a rule targets something that is not a function (or state machine) of the templates, a
    rule target has no dead-letter queue, or a function is neither a rule target nor a
    pipeline action;
  * a function has no EventInvokeConfig with explicit MaximumRetryAttempts and
    MaximumEventAgeInSeconds, a rule-driven function has no on-failure SQS destination, or a
    pipeline action has one (its event is the CodePipeline job, with artifactCredentials that
    must never be stored);
  * the group-policy rule can fire for a central group that is not named {group}-{dev account}
    of an allow-listed dev account (it replaces the group's whole resource policy), judged on
    the sample events, or its state machine reads another lineage key than promote-model writes;
  * a central role that may read (so HEAD) artifact bucket objects may not list the bucket
    (S3 then answers 403, not 404, for a missing key);
  * the forwarding role name of the central bus policy and of the dev stack differ, or the dev
    ArtifactKeyPattern default differs from names.json, does not match the sample events' dev
    artifacts, or the samconfig example's DevArtifactObjectArns do not use it;
  * an action's Namespace differs from infra/pipeline.json; the prod approval's ExternalEntityLink
    is not an https:// URL made with an output variable of an earlier action (this version's
    evidence, not a folder), its CustomData does not name the version, it leaves an output
    variable of the definition unused or references one no earlier action publishes, or, with
    the longest values the definition allows, a resolved field outgrows its limit;
  * infra/samconfig.toml.example sets a parameter a template does not have, or misses one
    a template requires.

usage: check_drift.py
"""

from __future__ import annotations

import copy
import fnmatch
import json
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

sys.dont_write_bytecode = True  # no __pycache__ in the work tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import cfn  # noqa: E402

ROOT = cfn.ROOT
INFRA = cfn.INFRA

# Read by the AWS SDK (retries) and the tracing subscriber (log filter), not by our config code.
RUNTIME_VARIABLES = {"AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE", "RUST_LOG"}

# The local accounts of the design, to render the templates as the emulator sees them.
LOCAL_ACCOUNTS = {"TestAccountId": "333333333333", "ProdAccountId": "444444444444", "AWS::AccountId": "222222222222"}
LOCAL_PSEUDO = {"AWS::Partition": "aws", "AWS::Region": "us-east-1"}


class Report:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.notes: list[str] = []

    def error(self, message: str) -> None:
        self.errors.append(message)

    def expect(self, condition: bool, message: str) -> None:
        if not condition:
            self.error(message)

    def same(self, what: str, template_value: Any, expected: Any, source: str = "infra/names.json") -> None:
        if template_value != expected:
            self.error(f"{what}: the template says {template_value!r}, {source} says {expected!r}")


# ------------------------------------------------------------------ functions


def read_pending(path: Path) -> list[str]:
    if not path.exists():
        return []
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def code_functions(root: Path) -> dict[str, Path]:
    """name -> crate directory, for every functions/<name>/Cargo.toml."""
    found = {}
    for manifest in sorted((root / "functions").glob("*/Cargo.toml")):
        found[manifest.parent.name] = manifest.parent
    return found


def function_drift(in_templates: set[str], in_code: set[str], pending: list[str], report: Report) -> None:
    """The set rules between templates, code and the pending list."""
    pending_set = set(pending)
    for name in sorted(pending_set & in_code):
        report.error(f"{name} is listed in infra/pending-functions.txt but functions/{name}/Cargo.toml exists: remove it from the list")
    for name in sorted(pending_set - in_templates):
        report.error(f"pending function {name} is in no template")
    for name in sorted(in_templates - in_code - pending_set):
        report.error(f"function {name} of the templates has no crate functions/{name}/Cargo.toml (nor is it pending)")
    for name in sorted(in_code - in_templates):
        report.error(f"crate functions/{name} is a function of no template")
    for name in sorted(pending_set - in_code):
        report.notes.append(f"pending: {name} (in the templates, not yet in functions/)")


def template_functions(templates: dict[str, dict[str, Any]]) -> dict[str, tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """binary name -> (template file, logical id, resource, globals of Function)."""
    out = {}
    for file, template in templates.items():
        glob = ((template.get("Globals") or {}).get("Function")) or {}
        for logical, resource in cfn.resources(template, "AWS::Serverless::Function"):
            binary = ((resource.get("Metadata") or {}).get("BuildProperties") or {}).get("Binary", logical)
            out[binary] = (file, logical, resource, glob)
    return out


def check_build(name: str, file: str, logical: str, resource: dict[str, Any], glob: dict[str, Any], report: Report) -> None:
    props = resource.get("Properties") or {}
    value = lambda key: props.get(key, glob.get(key))  # noqa: E731
    where = f"{file} {logical}"
    metadata = resource.get("Metadata") or {}
    report.expect(metadata.get("BuildMethod") == "rust-cargolambda", f"{where}: BuildMethod is not rust-cargolambda")
    report.expect(value("Runtime") == "provided.al2023", f"{where}: Runtime is not provided.al2023")
    report.expect(value("Handler") == "bootstrap", f"{where}: Handler is not bootstrap")
    report.expect(value("Architectures") == ["arm64"], f"{where}: Architectures is not [arm64]")
    code_uri = value("CodeUri")
    report.expect(
        isinstance(code_uri, str) and (INFRA / code_uri).resolve() == ROOT,
        f"{where}: CodeUri {code_uri!r} is not the workspace root",
    )


def manifest_binary(crate: Path) -> str | None:
    manifest = tomllib.loads((crate / "Cargo.toml").read_text())
    bins = manifest.get("bin") or []
    if bins:
        return bins[0].get("name")
    if (crate / "src" / "main.rs").exists():
        return (manifest.get("package") or {}).get("name")
    return None


# ------------------------------------------------------------------ environment


def config_reads(root: Path, crate: Path) -> tuple[set[str], str]:
    """Environment variables a function's code reads: those its config type's impl names,
    plus direct std::env::var calls in the crate. Returns (names, where it looked)."""
    sources = sorted((crate / "src").rglob("*.rs"))
    text = "\n".join(path.read_text() for path in sources)
    names = set(re.findall(r'env::var(?:_os)?\(\s*"([A-Z][A-Z0-9_]+)"', text))
    looked = [str(crate.relative_to(root) / "src")]
    # The configuration types the crate names (its handler takes one), read from the environment
    # by their impl in shared/src (from_env/from_lookup).
    for config in sorted(set(re.findall(r"\b([A-Z]\w*Config)\b", text))):
        body = impl_block(root / "shared" / "src", config)
        if body is None or not re.search(r"fn from_(env|lookup)\b", body):
            continue
        names |= set(re.findall(r'\(\s*"([A-Z][A-Z0-9_]+)"', body))
        looked.append(f"impl {config}")
    return names, ", ".join(looked)


def impl_block(source_dir: Path, type_name: str) -> str | None:
    for path in sorted(source_dir.rglob("*.rs")):
        text = path.read_text()
        match = re.search(rf"^impl {type_name} \{{\n", text, re.M)
        if match:
            end = re.search(r"^\}\n", text[match.end():], re.M)
            return text[match.end(): match.end() + (end.start() if end else len(text))]
    return None


def check_environment(name: str, resource: dict[str, Any], glob: dict[str, Any], crate: Path, report: Report) -> None:
    variables = dict(((glob.get("Environment") or {}).get("Variables")) or {})
    variables.update((((resource.get("Properties") or {}).get("Environment") or {}).get("Variables")) or {})
    reads, looked = config_reads(ROOT, crate)
    if not reads:
        report.error(f"{name}: cannot tell which variables the code reads ({looked}); update infra/check_drift.py")
        return
    for missing in sorted(reads - set(variables)):
        report.error(f"{name}: the code reads {missing} ({looked}) but the template does not set it")
    for extra in sorted(set(variables) - reads - RUNTIME_VARIABLES):
        report.error(f"{name}: the template sets {extra}, which the code does not read ({looked})")


# The timeout a function's code states: `const TIMEOUT: Duration = Duration::seconds(300);`.
TIMEOUT_CONSTANT = re.compile(r"\bconst TIMEOUT: Duration = Duration::(seconds|minutes)\((\d+)\);")


def check_timeout(name: str, resource: dict[str, Any], glob: dict[str, Any], crate: Path, report: Report) -> None:
    """The timeout a function's code states is the template's: the code takes it for the deadline
    of an invocation that reports none, so it must not promise more time than Lambda gives."""
    text = "\n".join(path.read_text() for path in sorted((crate / "src").rglob("*.rs")))
    stated = TIMEOUT_CONSTANT.findall(text)
    if len(stated) != len(re.findall(r"\bconst TIMEOUT\b", text)):
        report.error(f"{name}: a const TIMEOUT of functions/{name}/src is not Duration::seconds(N) or Duration::minutes(N); update infra/check_drift.py")
    timeout = (resource.get("Properties") or {}).get("Timeout", glob.get("Timeout"))
    for unit, amount in stated:
        seconds = int(amount) * (60 if unit == "minutes" else 1)
        report.same(f"{name}: Timeout", timeout, seconds, f"const TIMEOUT of functions/{name}/src")


def check_stage_config(functions: dict[str, Any], report: Report) -> None:
    configs = {}
    for name, (_file, _logical, resource, _glob) in functions.items():
        variables = (((resource.get("Properties") or {}).get("Environment") or {}).get("Variables")) or {}
        if "STAGE_CONFIG" in variables:
            configs[name] = variables["STAGE_CONFIG"]
    if not configs:
        return
    if len({json.dumps(c, sort_keys=True) for c in configs.values()}) != 1:
        report.error(f"STAGE_CONFIG differs between {', '.join(sorted(configs))}")
    local_path = ROOT / "shared" / "stage-config.local.json"
    if not local_path.exists():
        report.error("shared/stage-config.local.json is missing")
        return
    local = json.loads(local_path.read_text())
    central = cfn.load(INFRA / "central-account.yaml")
    parameters = {**cfn.parameter_defaults(central), **LOCAL_ACCOUNTS, **LOCAL_PSEUDO}
    parameters["StageTests"] = json.dumps(local["test"].get("tests", []))
    rendered = cfn.substitute(next(iter(configs.values())), parameters)
    try:
        stages = json.loads(rendered)
    except (TypeError, json.JSONDecodeError) as error:
        report.error(f"STAGE_CONFIG of the template is not JSON with the defaults: {error}: {rendered!r}")
        return
    source = "shared/stage-config.local.json"
    report.same("STAGE_CONFIG stages", sorted(stages), sorted(local), source)
    for stage in sorted(set(stages) & set(local)):
        mine, theirs = stages[stage], local[stage]
        report.same(f"STAGE_CONFIG {stage} settings", sorted(mine), sorted(theirs), source)
        for key in ("account", "deploy_role", "execution_role_arn"):
            report.same(f"STAGE_CONFIG {stage}.{key}", mine.get(key), theirs.get(key), source)
        if "blue_green" in mine or "blue_green" in theirs:
            report.same(
                f"STAGE_CONFIG {stage}.blue_green settings",
                sorted(mine.get("blue_green") or {}),
                sorted(theirs.get("blue_green") or {}),
                source,
            )
            report.same(
                f"STAGE_CONFIG {stage} rollback alarms",
                (mine.get("blue_green") or {}).get("alarms"),
                (theirs.get("blue_green") or {}).get("alarms"),
                source,
            )


# ------------------------------------------------------------------ names


def check_names(templates: dict[str, dict[str, Any]], names: dict[str, Any], report: Report) -> None:
    central = templates["central-account.yaml"]
    dev = templates["dev-account.yaml"]
    target = templates["target-account.yaml"]
    c, d, t = cfn.parameter_defaults(central), cfn.parameter_defaults(dev), cfn.parameter_defaults(target)
    roles, function_roles = names["roles"], names["function_roles"]

    report.same("central EventBusName", c.get("EventBusName"), names["event_bus"])
    report.same("central LedgerTableName", c.get("LedgerTableName"), names["ledger_table"])
    report.same("central ArtifactBucketPrefix", c.get("ArtifactBucketPrefix"), names["artifact_bucket_prefix"])
    report.same("central ApprovalTopicName", c.get("ApprovalTopicName"), names["approval_topic"])
    report.same("central PipelineName", c.get("PipelineName"), names["pipeline"])
    report.same("central SourceReadRoleName", c.get("SourceReadRoleName"), roles["source_read"])
    report.same("central DeployRoleName", c.get("DeployRoleName"), roles["deploy"])
    report.same("central SageMakerExecutionRoleName", c.get("SageMakerExecutionRoleName"), roles["sagemaker_execution"])

    report.same("dev CentralEventBusName", d.get("CentralEventBusName"), names["event_bus"])
    report.same("dev SourceReadRoleName", d.get("SourceReadRoleName"), roles["source_read"])
    report.same("dev ForwardRoleName", d.get("ForwardRoleName"), roles["forward_approvals"])
    report.same("dev PromoteFunctionRoleName", d.get("PromoteFunctionRoleName"), function_roles["promote-model"])
    # The bus admits the forwarding role by name: one name for both stacks.
    report.same("central ForwardRoleName", c.get("ForwardRoleName"), roles["forward_approvals"])
    report.same("central ForwardRoleName (dev-account.yaml ForwardRoleName)", c.get("ForwardRoleName"), d.get("ForwardRoleName"), "dev-account.yaml")
    report.same("dev ArtifactKeyPattern", d.get("ArtifactKeyPattern"), names.get("dev_artifact_key_pattern"))

    report.same("target DeployRoleName", t.get("DeployRoleName"), roles["deploy"])
    report.same("target SageMakerExecutionRoleName", t.get("SageMakerExecutionRoleName"), roles["sagemaker_execution"])
    report.same("target DeployFunctionRoleName", t.get("DeployFunctionRoleName"), function_roles["deploy-model"])
    report.same("target TestFunctionRoleName", t.get("TestFunctionRoleName"), function_roles["test-model"])
    report.same("target ServiceName", t.get("ServiceName"), c.get("ServiceName"), "central-account.yaml")
    report.expect(
        (t.get("CentralArtifactBucketName") or "") == ""
        and "model-promotion-artifacts-${CentralAccountId}" in json.dumps(target),
        "target: the default central bucket name is not {artifact_bucket_prefix}-{central account}",
    )
    report.same("names.json artifact_bucket_prefix (target default)", "model-promotion-artifacts", names["artifact_bucket_prefix"])

    c_params = {**c, **LOCAL_PSEUDO}
    t_params = {**t, **LOCAL_PSEUDO, "Stage": "prod"}
    # Function roles: the central names, which the dev and target trusts name.
    for logical, resource in cfn.resources(central, "AWS::IAM::Role"):
        role_name = cfn.substitute((resource.get("Properties") or {}).get("RoleName"), c_params)
        for function, expected in function_roles.items():
            if logical == pascal(function) + "Role":
                report.same(f"central {logical} name", role_name, expected)
    # The ledger's key.
    table = dict(cfn.resources(central, "AWS::DynamoDB::Table")).get("LedgerTable", {}).get("Properties", {})
    key = {k["KeyType"]: k["AttributeName"] for k in table.get("KeySchema", [])}
    report.same("ledger key", {"hash": key.get("HASH"), "range": key.get("RANGE")}, names["ledger_key"])
    # The bus admits the dev forwarding role by name.
    bus_policy = dict(cfn.resources(central, "AWS::Events::EventBusPolicy")).get("EventBusOrganizationPolicy", {})
    principal = (((bus_policy.get("Properties") or {}).get("Statement") or {}).get("Condition") or {}).get("ArnLike", {})
    forward = cfn.substitute(principal.get("aws:PrincipalArn"), c_params) or ""
    report.same("central bus policy forwarding role", forward.rsplit("/", 1)[-1], roles["forward_approvals"])
    report.expect(
        (cfn.sub_text(principal.get("aws:PrincipalArn")) or "").endswith(":role/${ForwardRoleName}"),
        "central bus policy: the forwarding role name is not the ForwardRoleName parameter (the dev stack's name source)",
    )
    # promote-model may publish its own event only.
    promote_role = dict(cfn.resources(central, "AWS::IAM::Role")).get("PromoteModelRole", {})
    publish = [
        s
        for p in (promote_role.get("Properties") or {}).get("Policies", [])
        for s in p["PolicyDocument"]["Statement"]
        if s.get("Sid") == "PublishModelPromoted"
    ]
    equals = (publish[0].get("Condition") or {}).get("StringEquals", {}) if publish else {}
    report.same("promote-model event source", equals.get("events:source"), names["event_source"])
    report.same("promote-model event detail-type", equals.get("events:detail-type"), names["promoted_detail_type"])
    # Rollback alarms of the prod target stack.
    alarms = [
        cfn.substitute((r.get("Properties") or {}).get("AlarmName"), t_params)
        for _, r in cfn.resources(target, "AWS::CloudWatch::Alarm")
    ]
    report.same("target rollback alarms", sorted(alarms), sorted(names["rollback_alarms"]))
    check_hosting_scope(target, names["hosting_name_prefix"], report)


HOSTING_RESOURCE = re.compile(r":sagemaker:.*:(model|endpoint-config|endpoint)/([^/]*)$")


def check_hosting_scope(target: dict[str, Any], prefix: str, report: Report) -> None:
    """Every model, endpoint config and endpoint the target roles may touch is the service's own."""
    scoped = 0
    for arn in cfn.strings(target):
        match = HOSTING_RESOURCE.search(arn)
        if match:
            scoped += 1
            report.expect(match.group(2) == prefix + "*", f"target: {arn} is not limited to the names starting {prefix!r}")
    report.expect(scoped > 0, "target: no SageMaker hosting resource found to check against hosting_name_prefix")


def pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))


# ------------------------------------------------------------------ pipeline and rules


# `#{Namespace.Name}`: a variable CodePipeline resolves in an action's configuration.
VARIABLE_REFERENCE = re.compile(r"#\{([A-Za-z0-9@_-]+)\.([A-Za-z0-9@_-]+)\}")
# The longest model package ARN a pipeline execution carries (start-deployment starts it with
# central ARNs only): arn:aws:sagemaker:{region, 14}:{account}:model-package/{group, 63}/{version}.
PACKAGE_ARN_MAX = len("arn:aws:sagemaker:") + 14 + len(":123456789012:model-package/") + 63 + len("/4294967295")
# Resolved lengths: the approval's comments (CustomData) within 500 characters, the bound this
# template has always kept them to, and its link within 1000, the most an action configuration
# value may hold (ActionConfigurationValue in the CodePipeline API).
APPROVAL_FIELD_MAX = {"CustomData": 500, "ExternalEntityLink": 1000}
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


# ------------------------------------------------------------------ group policy scope

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


def check_group_policy_scope(central: dict[str, Any], events: Path, report: Report) -> None:
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
    # The state machine's lineage test reads the key promote-model writes.
    lineage = (ROOT / "shared" / "src" / "domain" / "lineage.rs").read_text()
    key = re.search(r'pub const SOURCE_ACCOUNT: &str = "([^"]+)";', lineage)
    machine_text = json.dumps([r for _, r in cfn.resources(central, "AWS::StepFunctions::StateMachine")])
    report.expect(
        key is not None and f"`{key.group(1)}`" in machine_text,
        "the group-policy state machine does not read the lineage key SOURCE_ACCOUNT of shared/src/domain/lineage.rs",
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


# ------------------------------------------------------------------ central bucket reads


def statements_of(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        statement
        for policy in cfn.as_list((role.get("Properties") or {}).get("Policies", []))
        for statement in cfn.as_list(((policy.get("PolicyDocument") or {}).get("Statement")) or [])
        if isinstance(statement, dict) and statement.get("Effect") == "Allow"
    ]


def check_missing_keys_are_404(central: dict[str, Any], report: Report) -> None:
    """A role that may GetObject (so HeadObject) in the artifact bucket may also list it: S3
    answers a HEAD of a missing key with 404 only then (403 otherwise, which the code treats
    as terminal)."""
    bucket_arn = {"Fn::GetAtt": "ArtifactBucket.Arn"}
    for logical, role in cfn.resources(central, "AWS::IAM::Role"):
        reads = lists = False
        for statement in statements_of(role):
            actions = {a.lower() for a in cfn.as_list(statement.get("Action", [])) if isinstance(a, str)}
            for resource in cfn.as_list(statement.get("Resource", [])):
                text = cfn.sub_text(resource) or ""
                if "s3:getobject" in actions and text.startswith("${ArtifactBucket.Arn}/"):
                    reads = True
                if "s3:listbucket" in actions and (resource == bucket_arn or resource == {"Fn::GetAtt": ["ArtifactBucket", "Arn"]}):
                    lists = True
        if reads and not lists:
            report.error(f"{logical} may HEAD artifact bucket objects but not s3:ListBucket the bucket: a missing key answers 403, not 404")


# ------------------------------------------------------------------ dev artifact keys


def check_dev_artifact_keys(templates: dict[str, dict[str, Any]], samconfig: Path, events: Path, report: Report) -> None:
    """The key pattern the dev bucket policy admits covers the artifacts the sample (and local)
    model versions name, and the central role's DevArtifactObjectArns in the example use it."""
    pattern = cfn.parameter_defaults(templates["dev-account.yaml"]).get("ArtifactKeyPattern") or ""
    uris = sorted(
        {
            uri
            for path in sorted(events.glob("*.json"))
            for uri in re.findall(r"s3://(dev-ml-artifacts-[0-9]{12})/([^\"]+)", path.read_text())
        }
    )
    report.expect(bool(uris), "no dev artifact (s3://dev-ml-artifacts-…) in events/*.json to check ArtifactKeyPattern against")
    for bucket, key in uris:
        # IAM's * matches any characters, slashes too, as fnmatch's does.
        report.expect(
            fnmatch.fnmatchcase(key, pattern),
            f"dev ArtifactKeyPattern {pattern!r} does not admit s3://{bucket}/{key} (events/*.json): the central role could not copy it",
        )
    config = tomllib.loads(samconfig.read_text())
    arns = (((config.get("central") or {}).get("deploy") or {}).get("parameters") or {}).get("parameter_overrides", {}).get("DevArtifactObjectArns", [])
    for arn in arns:
        report.expect(
            arn.endswith("/" + pattern),
            f"{samconfig.name} DevArtifactObjectArns {arn!r} is not the dev stack's ArtifactKeyPattern {pattern!r} in its bucket",
        )


# ------------------------------------------------------------------ samconfig example

SAMCONFIG_TEMPLATES = {
    "central": "central-account.yaml",
    "dev": "dev-account.yaml",
    "test": "target-account.yaml",
    "prod": "target-account.yaml",
}


def check_samconfig(templates: dict[str, dict[str, Any]], path: Path, report: Report) -> None:
    """The example sets only parameters the templates have, and every one without a default."""
    config = tomllib.loads(path.read_text())
    for env, file in SAMCONFIG_TEMPLATES.items():
        deploy = ((config.get(env) or {}).get("deploy") or {}).get("parameters")
        if deploy is None:
            report.error(f"{path.name}: no [{env}.deploy.parameters]")
            continue
        overrides = deploy.get("parameter_overrides") or {}
        parameters = templates[file].get("Parameters") or {}
        for name in sorted(set(overrides) - set(parameters)):
            report.error(f"{path.name} [{env}] sets {name}, which {file} does not have")
        for name in sorted(n for n, spec in parameters.items() if "Default" not in spec and n not in overrides):
            report.error(f"{path.name} [{env}] does not set {name}, which {file} requires")
        if env in ("test", "prod"):
            report.same(f"{path.name} [{env}] Stage", overrides.get("Stage"), env, "its environment name")


# ------------------------------------------------------------------ main


def run() -> Report:
    report = Report()
    templates = {path.name: cfn.load(path) for path in cfn.TEMPLATES}
    names = json.loads((INFRA / "names.json").read_text())
    definition = json.loads((INFRA / "pipeline.json").read_text())
    pending = read_pending(INFRA / "pending-functions.txt")

    in_templates = template_functions(templates)
    in_code = code_functions(ROOT)
    function_drift(set(in_templates), set(in_code), pending, report)
    for name, (file, logical, resource, glob) in sorted(in_templates.items()):
        check_build(name, file, logical, resource, glob, report)
        crate = in_code.get(name)
        if crate is None:
            continue
        binary = manifest_binary(crate)
        report.same(f"{name}: binary of functions/{name}", binary, name, "the template's BuildProperties.Binary")
        check_environment(name, resource, glob, crate, report)
        check_timeout(name, resource, glob, crate, report)
    check_stage_config(in_templates, report)
    check_names(templates, names, report)
    invoked = check_pipeline(templates["central-account.yaml"], definition, names, report)
    check_rules(templates["central-account.yaml"], invoked, report)
    check_group_policy_scope(templates["central-account.yaml"], ROOT / "events", report)
    check_missing_keys_are_404(templates["central-account.yaml"], report)
    check_dev_artifact_keys(templates, INFRA / "samconfig.toml.example", ROOT / "events", report)
    check_samconfig(templates, INFRA / "samconfig.toml.example", report)
    report.notes.insert(0, f"functions: {', '.join(sorted(in_templates))}")
    return report


def main() -> int:
    report = run()
    for note in report.notes:
        print(f"drift check: {note}")
    for error in report.errors:
        print(f"drift check: DRIFT: {error}")
    print(f"drift check: {len(report.errors)} drift(s)")
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
