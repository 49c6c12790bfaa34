"""The drift check against the code: the whole tree has no drift; functions vs crates and the
pending list; environment and timeout vs the code; and the Rust it reads (config readers, the
lineage key, the local stage config) found wherever it lives under shared/."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

import cfn
import check_drift
from drift import functions, rules, rust, stage_config
from drift.report import Report

ROOT = cfn.ROOT


def test_the_real_tree_has_no_drift() -> None:
    report = check_drift.run()
    assert not report.errors, "\n".join(f"({s}) {e}" for s, e in zip(report.sections, report.errors))


def test_drift_check_prints_its_count_and_exits_0_on_the_real_tree(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_drift.main() == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("drift check: functions: ") and lines[-1] == "drift check: 0 drift(s)", lines


# ------------------------------------------------------------------ functions vs crates


def test_a_pending_function_whose_crate_now_exists_fails() -> None:
    report = Report()
    functions.function_drift({"a", "b"}, {"a", "b"}, ["b"], report)
    assert any("remove it from the list" in e for e in report.errors), report.errors


def test_a_pending_function_must_stay_in_a_template() -> None:
    report = Report()
    functions.function_drift({"a"}, {"a"}, ["gone"], report)
    assert any("pending function gone is in no template" in e for e in report.errors), report.errors


def test_functions_missing_on_either_side_fail() -> None:
    report = Report()
    functions.function_drift({"a", "designed"}, {"a", "orphan"}, [], report)
    assert any("designed of the templates has no crate" in e for e in report.errors), report.errors
    assert any("crate functions/orphan is a function of no template" in e for e in report.errors), report.errors


def test_a_function_without_crate_is_only_noted_while_pending() -> None:
    report = Report()
    functions.function_drift({"a", "designed"}, {"a"}, ["designed"], report)
    assert not report.errors and any("pending: designed" in n for n in report.notes), (report.errors, report.notes)


# ------------------------------------------------------------------ environment and timeout


def test_environment_drift_fails_both_ways(central: dict[str, Any]) -> None:
    resource = copy.deepcopy(central["Resources"]["PromoteModelFunction"])
    variables = resource["Properties"]["Environment"]["Variables"]
    del variables["SOURCE_ACCOUNTS"]
    variables["UNUSED_SETTING"] = "x"
    report = Report()
    functions.check_environment("promote-model", resource, {}, ROOT / "functions" / "promote-model", report)
    assert any("reads SOURCE_ACCOUNTS" in e for e in report.errors), report.errors
    assert any("sets UNUSED_SETTING" in e for e in report.errors), report.errors


@pytest.mark.parametrize("name, logical", [("test-model", "TestModelFunction"), ("deploy-model", "DeployModelFunction")])
def test_a_timeout_the_code_states_unlike_the_template_fails(central: dict[str, Any], name: str, logical: str) -> None:
    resource = copy.deepcopy(central["Resources"][logical])
    crate = ROOT / "functions" / name
    report = Report()
    functions.check_timeout(name, resource, {}, crate, report)
    assert not report.errors, report.errors
    resource["Properties"]["Timeout"] += 60
    functions.check_timeout(name, resource, {}, crate, report)
    assert any(e.startswith(f"{name}: Timeout: the template says") for e in report.errors), report.errors


# ------------------------------------------------------------------ the Rust code, wherever it lives

READER = """\
impl DeployConfig {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |name: &'static str| lookup(name).ok_or(ConfigError::Missing(name));
        Ok(Self { table: required("LEDGER_TABLE")?, stages: parse(&required("STAGE_CONFIG")?)? })
    }
}
"""
ENV_READER = """\
pub mod env {
    impl FromEnv for promotion_core::DeployConfig {
        fn from_env() -> Result<Self, ConfigError> {
            Self::from_lookup(|name| std::env::var(name).ok()).map(|c| c.with(lookup("PIPELINE_NAME")))
        }
    }
}
"""
NOT_READERS = """\
impl DeployConfig {
    pub fn describe(&self) -> String { format("NOT_A_VARIABLE") }
}
impl From<DeployConfig> for Summary {
    fn from_env(config: DeployConfig) -> Self { Summary(read("NOR_THIS_ONE")) }
}
"""


def tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def test_config_readers_are_found_in_every_impl_of_the_type_under_shared(tmp_path: Path) -> None:
    root = tree(tmp_path, {
        "shared/core/src/deployment/config/read.rs": READER,
        "shared/aws/src/wiring.rs": ENV_READER,
        "shared/core/src/other.rs": NOT_READERS,
    })
    found = rust.config_variables(root, "DeployConfig")
    assert found == (
        {"LEDGER_TABLE", "STAGE_CONFIG", "PIPELINE_NAME"},
        ["shared/aws/src/wiring.rs", "shared/core/src/deployment/config/read.rs"],
    ), found
    assert rust.config_variables(root, "PromoteConfig") is None


@pytest.mark.parametrize("location", ["shared/core/src/deployment/mod.rs", "shared/core/src/deployment/config.rs", "shared/aws/src/config/deploy.rs"])
def test_environment_check_follows_the_config_code_wherever_it_moves(tmp_path: Path, location: str) -> None:
    root = tree(tmp_path, {
        "functions/f/src/lib.rs": "use promotion_core::deployment::DeployConfig;\n",
        location: READER,
    })
    resource = {"Properties": {"Environment": {"Variables": {"LEDGER_TABLE": "t", "STAGE_CONFIG": "{}"}}}}
    report = Report()
    functions.check_environment("f", resource, {}, root / "functions" / "f", report, root)
    assert not report.errors, report.errors
    (root / location).unlink()
    functions.check_environment("f", resource, {}, root / "functions" / "f", report, root)
    assert report.errors == ["f: cannot tell which variables the code reads (functions/f/src); update infra/drift/rust.py"], report.errors


def test_the_real_config_readers_and_lineage_key_are_found() -> None:
    deploy = rust.config_variables(ROOT, "DeployConfig")
    promote = rust.config_variables(ROOT, "PromoteConfig")
    assert deploy is not None and "STAGE_CONFIG" in deploy[0], deploy
    assert promote is not None and "SOURCE_ACCOUNTS" in promote[0], promote
    assert [value for value, _ in rust.string_constants(ROOT, "SOURCE_ACCOUNT")] == ["promotion:source-account"]
    assert len(rust.local_stage_configs(ROOT)) == 1


LINEAGE = 'pub const SOURCE_ACCOUNT: &str = "promotion:source-account";\n'


def group_policy_errors(central: dict[str, Any], root: Path) -> list[str]:
    report = Report()
    rules.check_group_policy_scope(central, ROOT / "events", report, root)
    return report.errors


def test_the_lineage_key_is_found_anywhere_under_shared(central: dict[str, Any], tmp_path: Path) -> None:
    root = tree(tmp_path, {"shared/model/src/lineage/keys.rs": LINEAGE})
    assert not group_policy_errors(central, root)


def test_a_missing_or_ambiguous_lineage_key_fails(central: dict[str, Any], tmp_path: Path) -> None:
    root = tree(tmp_path, {"shared/core/src/x.rs": "// nothing\n"})
    assert any("expected one lineage key" in e and "none" in e for e in group_policy_errors(central, root))
    root = tree(tmp_path, {"shared/a.rs": LINEAGE, "shared/b.rs": LINEAGE.replace("source-account", "account")})
    assert any("expected one lineage key" in e for e in group_policy_errors(central, root))


def test_the_local_stage_config_is_found_anywhere_under_shared(templates: dict[str, Any], tmp_path: Path) -> None:
    (local,) = rust.local_stage_configs(ROOT)
    in_templates = functions.template_functions(templates)
    moved = tmp_path / "shared" / "config" / "stage-config.local.json"
    moved.parent.mkdir(parents=True)
    shutil.copy(local, moved)
    report = Report()
    stage_config.check_stage_config(in_templates, report, tmp_path)
    assert not report.errors, report.errors
    moved.unlink()
    stage_config.check_stage_config(in_templates, report, tmp_path)
    assert report.errors == ["expected one shared/**/stage-config.local.json (the emulator's STAGE_CONFIG), found none"], report.errors


def test_stage_config_drift_from_the_local_one_fails(templates: dict[str, Any], tmp_path: Path) -> None:
    (local,) = rust.local_stage_configs(ROOT)
    changed = json.loads(local.read_text())
    changed["prod"]["blue_green"]["alarms"] = ["another-alarm"]
    tree(tmp_path, {"shared/core/stage-config.local.json": json.dumps(changed)})
    report = Report()
    stage_config.check_stage_config(functions.template_functions(templates), report, tmp_path)
    assert any("STAGE_CONFIG prod rollback alarms" in e for e in report.errors), report.errors
