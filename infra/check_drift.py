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
    names differ from shared/core/stage-config.local.json, the emulator's (found as
    shared/**/stage-config.local.json);
  * a name default (bus, table, bucket prefix, topic, pipeline, roles, alarms, event source
    and detail-type, the AWS image registries) differs from infra/names.json, which the
    emulator's provisioning reads;
  * the pipeline's stages after Source, their order, their functions and UserParameters
    differ from infra/pipeline.json, which the local pipeline driver runs;
  * a rule targets something that is not a function (or state machine) of the templates, a
    rule target has no dead-letter queue, or a function is neither a rule target nor a
    pipeline action;
  * a function has no EventInvokeConfig with explicit MaximumRetryAttempts and
    MaximumEventAgeInSeconds, a rule-driven function has no on-failure SQS destination, or a
    pipeline action has one (its event is the CodePipeline job, with artifactCredentials that
    must never be stored), or a pipeline action has no alarm to the alert topic on its
    asynchronous events dropped (AsyncEventsDropped) or aged (AsyncEventAge);
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
  * a role the code runs as (a function's, or one the functions or the CLI assume) is granted
    an action no adapter of shared/aws/src calls for (infra/drift/grants.py, which lists the
    actions AWS evaluates for another call, such as kms:Decrypt for an SSE-KMS read);
  * infra/samconfig.toml.example sets a parameter a template does not have, or misses one
    a template requires.

The checks live in infra/drift/, one module per concern (its __init__ lists them); the Rust
code they read (config readers, the lineage key) is searched for in every shared/**/*.rs, so a
file moving between the crates under shared/ breaks nothing.

usage: check_drift.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the work tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import cfn  # noqa: E402
from drift import artifacts, functions, grants, names, pipeline, rules, samconfig, stage_config  # noqa: E402
from drift.report import Report  # noqa: E402


def run(root: Path = cfn.ROOT) -> Report:
    report = Report()
    infra = root / "infra"
    templates = {path.name: cfn.load(infra / path.name) for path in cfn.TEMPLATES}
    central = templates["central-account.yaml"]
    events = root / "events"
    example = infra / "samconfig.toml.example"
    name_defaults = json.loads((infra / "names.json").read_text())

    report.section = "functions"
    in_templates = functions.template_functions(templates)
    in_code = functions.code_functions(root)
    functions.function_drift(set(in_templates), set(in_code), functions.read_pending(infra / "pending-functions.txt"), report)
    for name, (file, logical, resource, glob) in sorted(in_templates.items()):
        functions.check_build(name, file, logical, resource, glob, report)
        crate = in_code.get(name)
        if crate is None:
            continue
        binary = functions.manifest_binary(crate)
        report.same(f"{name}: binary of functions/{name}", binary, name, "the template's BuildProperties.Binary")
        functions.check_environment(name, resource, glob, crate, report, root)
        functions.check_timeout(name, resource, glob, crate, report)
    report.section = "stage config"
    stage_config.check_stage_config(in_templates, report, root)
    report.section = "names"
    names.check_names(templates, name_defaults, report)
    report.section = "pipeline"
    invoked = pipeline.check_pipeline(central, json.loads((infra / "pipeline.json").read_text()), name_defaults, report)
    report.section = "rules"
    rules.check_rules(central, invoked, report)
    rules.check_group_policy_scope(central, events, report, root)
    report.section = "artifacts"
    artifacts.check_missing_keys_are_404(central, report)
    artifacts.check_dev_artifact_keys(templates, example, events, report)
    report.section = "grants"
    grants.check_grants(templates, report, root)
    report.section = "samconfig"
    samconfig.check_samconfig(templates, example, report)
    report.notes.insert(0, f"functions: {', '.join(sorted(in_templates))}")
    return report


def main() -> int:
    report = run()
    for note in report.notes:
        print(f"drift check: {note}")
    for section, error in zip(report.sections, report.errors):
        print(f"drift check: DRIFT ({section}): {error}")
    print(f"drift check: {len(report.errors)} drift(s)")
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
