"""The drift check of the pipeline: stages and variables vs infra/pipeline.json, and the prod
approval showing this version's evidence within CodePipeline's limits."""

from __future__ import annotations

import copy
from typing import Any, Callable

import pytest

from drift import pipeline
from drift.report import Report

Change = Callable[[dict, dict], None]


@pytest.fixture
def pipeline_errors(central: dict[str, Any], definition: dict[str, Any], names: dict[str, Any]) -> Callable[[Change], list[str]]:
    """The pipeline check's errors once `change(central, definition)` edited copies of both."""

    def errors(change: Change) -> list[str]:
        mine, wanted = copy.deepcopy(central), copy.deepcopy(definition)
        change(mine, wanted)
        report = Report()
        pipeline.check_pipeline(mine, wanted, names, report)
        return report.errors

    return errors


def action(central: dict, name: str) -> dict:
    return next(s for s in central["Resources"]["Pipeline"]["Properties"]["Stages"] if s["Name"] == name)["Actions"][0]


def test_the_pipeline_passes_as_it_is(pipeline_errors: Callable[[Change], list[str]]) -> None:
    assert not pipeline_errors(lambda central, definition: None)


def test_pipeline_stages_in_another_order_fail(pipeline_errors: Callable[[Change], list[str]]) -> None:
    def swapped(central: dict, definition: dict) -> None:
        definition["stages"][0], definition["stages"][1] = definition["stages"][1], definition["stages"][0]

    errors = pipeline_errors(swapped)
    assert any("pipeline stages" in e for e in errors), errors


def test_a_renamed_pipeline_variable_fails(pipeline_errors: Callable[[Change], list[str]]) -> None:
    def renamed(central: dict, definition: dict) -> None:
        definition["variable"] = "PackageArn"

    errors = pipeline_errors(renamed)
    assert any("pipeline variables" in e for e in errors), errors
    assert any("model_package_arn" in e for e in errors), errors


def test_the_prod_approval_must_link_this_versions_evidence(pipeline_errors: Callable[[Change], list[str]]) -> None:
    def generic(central: dict, definition: dict) -> None:
        config = action(central, "ApproveProd")["Configuration"]
        config["ExternalEntityLink"] = {"Fn::Sub": "https://s3.console.aws.amazon.com/s3/buckets/${ArtifactBucket}?prefix=reports/"}
        config["CustomData"] = "Deploy to prod?"

    errors = pipeline_errors(generic)
    assert any("ExternalEntityLink" in e and "not an https:// URL made with an output variable" in e for e in errors), errors
    assert any("CustomData does not name the version" in e for e in errors), errors
    assert any("does not show #{TestModel.ModelCardUrl}" in e for e in errors), errors


def test_a_prod_approval_without_link_fails(pipeline_errors: Callable[[Change], list[str]]) -> None:
    def no_link(central: dict, definition: dict) -> None:
        del action(central, "ApproveProd")["Configuration"]["ExternalEntityLink"]

    errors = pipeline_errors(no_link)
    assert any("ExternalEntityLink ''" in e for e in errors), errors


def test_the_prod_approval_link_must_be_https(pipeline_errors: Callable[[Change], list[str]]) -> None:
    def bare(central: dict, definition: dict) -> None:
        action(central, "ApproveProd")["Configuration"]["ExternalEntityLink"] = "#{TestModel.ReportKey}"

    errors = pipeline_errors(bare)
    assert any("not an https:// URL" in e for e in errors), errors


def test_the_prod_approval_may_read_only_variables_test_model_publishes(pipeline_errors: Callable[[Change], list[str]]) -> None:
    def misspelt(central: dict, definition: dict) -> None:
        config = action(central, "ApproveProd")["Configuration"]
        link = config["ExternalEntityLink"]["Fn::Sub"]
        config["ExternalEntityLink"]["Fn::Sub"] = link.replace("ReportKey", "ReportKy").replace("ReportVersion", "ReportVersn")

    errors = pipeline_errors(misspelt)
    assert any("#{TestModel.ReportKy} is no variable" in e for e in errors), errors
    assert any("ExternalEntityLink" in e and "not an https:// URL made with an output variable" in e for e in errors), errors


def test_test_model_without_its_namespace_fails(pipeline_errors: Callable[[Change], list[str]]) -> None:
    def unnamed(central: dict, definition: dict) -> None:
        del action(central, "TestModel")["Namespace"]

    errors = pipeline_errors(unnamed)
    assert any("stage TestModel Namespace" in e for e in errors), errors


def test_the_prod_approval_may_not_read_variables_published_after_it(pipeline_errors: Callable[[Change], list[str]]) -> None:
    def later(central: dict, definition: dict) -> None:
        stages = definition["stages"]
        stages[1]["namespace"] = "Later"
        stages[3]["namespace"], stages[3]["variables"] = "TestModel", stages[1].pop("variables")
        action(central, "DeployProd")["Namespace"] = "TestModel"
        action(central, "TestModel")["Namespace"] = "Later"

    errors = pipeline_errors(later)
    assert any("#{TestModel.ReportKey} is no variable" in e for e in errors), errors


def test_the_prod_approval_comments_must_fit_1000_characters_at_the_longest_values(pipeline_errors: Callable[[Change], list[str]]) -> None:
    def longer(central: dict, definition: dict) -> None:
        definition["stages"][1]["variables"]["ModelCardUrl"]["max_length"] = 600

    errors = pipeline_errors(longer)
    assert any("CustomData may resolve to 1046 characters, more than 1000" in e for e in errors), errors


def test_the_prod_approval_link_must_fit_1000_characters_at_the_longest_values(pipeline_errors: Callable[[Change], list[str]]) -> None:
    def huge(central: dict, definition: dict) -> None:
        definition["stages"][1]["variables"]["ReportKey"]["max_length"] = 900

    errors = pipeline_errors(huge)
    assert any("ExternalEntityLink may resolve to" in e and "more than 1000" in e for e in errors), errors
