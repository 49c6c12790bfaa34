"""STAGE_CONFIG: the same for every deployment function, and of the shape, roles and alarm names
of the emulator's stage settings (shared/**/stage-config.local.json, the Rust crate's example)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cfn
from drift import rust
from drift.report import LOCAL_ACCOUNTS, LOCAL_PSEUDO, Report


def local_stage_config(root: Path, report: Report) -> tuple[dict[str, Any], str] | None:
    found = rust.local_stage_configs(root)
    if len(found) != 1:
        listed = ", ".join(rust.relative(root, p) for p in found) or "none"
        report.error(f"expected one shared/**/stage-config.local.json (the emulator's STAGE_CONFIG), found {listed}")
        return None
    return json.loads(found[0].read_text()), rust.relative(root, found[0])


def check_stage_config(functions: dict[str, Any], report: Report, root: Path = cfn.ROOT) -> None:
    configs = {}
    for name, (_file, _logical, resource, _glob) in functions.items():
        variables = (((resource.get("Properties") or {}).get("Environment") or {}).get("Variables")) or {}
        if "STAGE_CONFIG" in variables:
            configs[name] = variables["STAGE_CONFIG"]
    if not configs:
        return
    if len({json.dumps(c, sort_keys=True) for c in configs.values()}) != 1:
        report.error(f"STAGE_CONFIG differs between {', '.join(sorted(configs))}")
    found = local_stage_config(root, report)
    if found is None:
        return
    local, source = found
    central = cfn.load(cfn.INFRA / "central-account.yaml")
    parameters = {**cfn.parameter_defaults(central), **LOCAL_ACCOUNTS, **LOCAL_PSEUDO}
    parameters["StageTests"] = json.dumps(local["test"].get("tests", []))
    rendered = cfn.substitute(next(iter(configs.values())), parameters)
    try:
        stages = json.loads(rendered)
    except (TypeError, json.JSONDecodeError) as error:
        report.error(f"STAGE_CONFIG of the template is not JSON with the defaults: {error}: {rendered!r}")
        return
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
