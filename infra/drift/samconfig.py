"""infra/samconfig.toml.example sets only parameters the templates have, and every one they
require."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from drift.report import Report

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
