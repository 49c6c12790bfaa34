//! What a passed run hands on: the approval request the governance officers read and the
//! output variables the prod approval links.

use crate::domain::deploy::OutputVariables;
use crate::domain::ids::{ModelPackageArn, S3Uri};

use super::Pass;

/// What a governance officer reads before approving prod: the results and where to look.
pub(super) fn approval_request(package: &ModelPackageArn, pass: &Pass, endpoint: &str) -> String {
    format!(
        "{package} passed {passed} of {total} test cases on {endpoint} and waits for the prod approval.\n\n\
         Test report: {report_url}\n\
         Model card: {card_url}\n\n\
         Approve or reject in CodePipeline, or: promote approve {model} --stage prod --comment \"...\"",
        passed = pass.passed,
        total = pass.total,
        report_url = report_console_url(package, &pass.report),
        card_url = card_console_url(package),
        model = package.group(),
    )
}

/// The output variables of a passed run, under TestModel's namespace: the prod approval links the
/// report (its key in the central bucket, which the template knows) and shows the card and the
/// results of exactly this version (`infra/pipeline.json` lists them with their longest values,
/// which the approval's link and text are checked to fit in).
pub(super) fn evidence(package: &ModelPackageArn, pass: &Pass) -> OutputVariables {
    OutputVariables::from([
        ("ReportKey".to_owned(), pass.report.key().to_owned()),
        ("ModelCardUrl".to_owned(), card_console_url(package)),
        ("TestSummary".to_owned(), format!("{}/{} test cases passed, slowest {} ms", pass.passed, pass.total, pass.slowest_ms)),
    ])
}

/// The report in the S3 console. Group names and job ids need no escaping in a query string.
fn report_console_url(package: &ModelPackageArn, uri: &S3Uri) -> String {
    format!("https://s3.console.aws.amazon.com/s3/object/{}?region={}&prefix={}", uri.bucket(), package.region(), uri.key())
}

/// The version's model card, named after its group, in the SageMaker console.
fn card_console_url(package: &ModelPackageArn) -> String {
    let region = package.region();
    format!("https://{region}.console.aws.amazon.com/sagemaker/home?region={region}#/model-cards/{}", crate::domain::card::card_name(package))
}

/// The output variables test-model publishes, with their longest values, as the pipeline
/// definition lists them for the template's approval (`infra/check_drift.py`): what the tests
/// hold the evidence to.
#[cfg(any(test, feature = "fakes"))]
pub fn published_variables() -> std::collections::BTreeMap<String, usize> {
    let definition: serde_json::Value = serde_json::from_str(include_str!("../../../../../infra/pipeline.json")).expect("pipeline.json");
    let stage = definition["stages"].as_array().expect("stages").iter().find(|s| s["action"] == "test-model").expect("a test-model stage");
    let variables = stage["variables"].as_object().expect("test-model's variables");
    variables.iter().map(|(name, v)| (name.clone(), usize::try_from(v["max_length"].as_u64().expect("max_length")).expect("a length"))).collect()
}
