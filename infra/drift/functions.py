"""Templates vs functions/: every function has its crate (or is pending), is built like the
others, is given the environment its code reads, and has the timeout its code states."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import cfn
from drift import rust
from drift.report import Report

# Read by the AWS SDK (retries) and the tracing subscriber (log filter), not by our config code.
RUNTIME_VARIABLES = {"AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE", "RUST_LOG"}

# The timeout a function's code states: `const TIMEOUT: Duration = Duration::seconds(300);`.
TIMEOUT_CONSTANT = re.compile(r"\bconst TIMEOUT: Duration = Duration::(seconds|minutes)\((\d+)\);")

# function binary -> (template file, logical id, resource, globals of Function)
TemplateFunctions = dict[str, tuple[str, str, dict[str, Any], dict[str, Any]]]


def read_pending(path: Path) -> list[str]:
    if not path.exists():
        return []
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def code_functions(root: Path) -> dict[str, Path]:
    """name -> crate directory, for every functions/<name>/Cargo.toml."""
    return {manifest.parent.name: manifest.parent for manifest in sorted((root / "functions").glob("*/Cargo.toml"))}


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


def template_functions(templates: dict[str, dict[str, Any]]) -> TemplateFunctions:
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
        isinstance(code_uri, str) and (cfn.INFRA / code_uri).resolve() == cfn.ROOT,
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


def crate_text(crate: Path) -> str:
    return "\n".join(path.read_text() for path in sorted((crate / "src").rglob("*.rs")))


def config_reads(root: Path, crate: Path) -> tuple[set[str], str]:
    """Environment variables a function's code reads: those its config types' readers name
    (from_env/from_lookup, in an impl anywhere under shared/), plus direct std::env::var calls
    in the crate. Returns (names, where it looked)."""
    text = crate_text(crate)
    names = set(re.findall(r'env::var(?:_os)?\(\s*"([A-Z][A-Z0-9_]+)"', text))
    looked = [str(crate.relative_to(root) / "src")]
    # The configuration types the crate names (its handler takes one).
    for config in sorted(set(re.findall(r"\b([A-Z]\w*Config)\b", text))):
        found = rust.config_variables(root, config)
        if found is None:
            continue
        variables, files = found
        names |= variables
        looked.append(f"impl {config} in {', '.join(files)}")
    return names, "; ".join(looked)


def check_environment(
    name: str, resource: dict[str, Any], glob: dict[str, Any], crate: Path, report: Report, root: Path = cfn.ROOT
) -> None:
    variables = dict(((glob.get("Environment") or {}).get("Variables")) or {})
    variables.update((((resource.get("Properties") or {}).get("Environment") or {}).get("Variables")) or {})
    reads, looked = config_reads(root, crate)
    if not reads:
        report.error(f"{name}: cannot tell which variables the code reads ({looked}); update infra/drift/rust.py")
        return
    for missing in sorted(reads - set(variables)):
        report.error(f"{name}: the code reads {missing} ({looked}) but the template does not set it")
    for extra in sorted(set(variables) - reads - RUNTIME_VARIABLES):
        report.error(f"{name}: the template sets {extra}, which the code does not read ({looked})")


def check_timeout(name: str, resource: dict[str, Any], glob: dict[str, Any], crate: Path, report: Report) -> None:
    """The timeout a function's code states is the template's: the code takes it for the deadline
    of an invocation that reports none, so it must not promise more time than Lambda gives."""
    text = crate_text(crate)
    stated = TIMEOUT_CONSTANT.findall(text)
    if len(stated) != len(re.findall(r"\bconst TIMEOUT\b", text)):
        report.error(f"{name}: a const TIMEOUT of functions/{name}/src is not Duration::seconds(N) or Duration::minutes(N); update infra/drift/functions.py")
    timeout = (resource.get("Properties") or {}).get("Timeout", glob.get("Timeout"))
    for unit, amount in stated:
        seconds = int(amount) * (60 if unit == "minutes" else 1)
        report.same(f"{name}: Timeout", timeout, seconds, f"const TIMEOUT of functions/{name}/src")
