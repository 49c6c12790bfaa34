"""Helpers shared by the offline checks of infra/: load a template, walk its intrinsics.

Templates are read with cfn-lint's own YAML loader, so that `!Sub`, `!Ref` and friends come
back in their long form ({"Fn::Sub": ...}) exactly as cfn-lint and CloudFormation see them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

INFRA = Path(__file__).resolve().parent
ROOT = INFRA.parent

# The templates of the service, one per account role, and the organization's guardrails
# (service control policies, deployed in the management account).
TEMPLATES = [
    INFRA / "central-account.yaml",
    INFRA / "dev-account.yaml",
    INFRA / "target-account.yaml",
    INFRA / "guardrails.yaml",
]


def load(path: Path | str) -> dict[str, Any]:
    """The template as plain dicts, lists and strings."""
    from cfnlint.decode import cfn_yaml

    return json.loads(json.dumps(cfn_yaml.load(str(path))))


def resources(template: dict[str, Any], *types: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, resource in (template.get("Resources") or {}).items():
        if not types or resource.get("Type") in types:
            yield name, resource


def branches(value: Any) -> Iterator[Any]:
    """Every value a node can take: both sides of an Fn::If, never AWS::NoValue."""
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        _, yes, no = value["Fn::If"]
        yield from branches(yes)
        yield from branches(no)
    elif value == {"Ref": "AWS::NoValue"}:
        return
    else:
        yield value


def strings(value: Any) -> Iterator[str]:
    """Every string anywhere in a template node, Fn::Sub templates included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def as_list(value: Any) -> list[Any]:
    """A policy field that may be one item or a list (or an Fn::If of either)."""
    out: list[Any] = []
    for branch in branches(value):
        if isinstance(branch, list):
            for item in branch:
                out.extend(branches(item))
        else:
            out.append(branch)
    return out


def sub_text(value: Any) -> str | None:
    """The literal text of a string or of an Fn::Sub's template string, else None."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return sub if isinstance(sub, str) else sub[0]
    return None


def substitute(value: Any, parameters: dict[str, str]) -> Any:
    """Resolves Ref/Fn::Sub/Fn::Join/Fn::If(true side) against `parameters`, where it can;
    leaves anything else (GetAtt, unknown names) as a readable placeholder."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return [substitute(v, parameters) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Ref"}:
        return parameters.get(value["Ref"], "<Ref " + value["Ref"] + ">")
    if set(value) == {"Fn::GetAtt"}:
        target = value["Fn::GetAtt"]
        return "<GetAtt " + (target if isinstance(target, str) else ".".join(target)) + ">"
    if set(value) == {"Fn::Sub"}:
        sub = value["Fn::Sub"]
        text, local = (sub, {}) if isinstance(sub, str) else (sub[0], sub[1])
        names = dict(parameters)
        names.update({k: substitute(v, parameters) for k, v in local.items()})
        import re

        return re.sub(r"\$\{([^}!]+)\}", lambda m: str(names.get(m.group(1), "<" + m.group(1) + ">")), text)
    if set(value) == {"Fn::Join"}:
        sep, items = value["Fn::Join"]
        items = substitute(items, parameters)
        return sep.join(items if isinstance(items, list) else [items])
    return {k: substitute(v, parameters) for k, v in value.items()}


def parameter_defaults(template: dict[str, Any]) -> dict[str, str]:
    return {
        name: str(spec["Default"])
        for name, spec in (template.get("Parameters") or {}).items()
        if "Default" in spec
    }
