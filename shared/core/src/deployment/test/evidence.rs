//! What a passed run hands on: the approval request the governance officers read and the
//! output variables the prod approval shows. Both name the report by key, version and SHA-256,
//! and the release the tests judged.

use crate::domain::deploy::OutputVariables;
use crate::domain::ids::{ModelPackageArn, S3Uri};

use super::verdict::Confirmed;

/// What a governance officer reads before approving prod: the results, the evidence, and where
/// to look.
pub(super) fn approval_request(package: &ModelPackageArn, confirmed: &Confirmed, endpoint: &str) -> String {
    let record = &confirmed.record;
    let version = record.report_version.as_deref().unwrap_or_default();
    format!(
        "{package} passed {passed} of {total} test cases on {endpoint} (execution {execution}) and waits for the prod approval.\n\n\
         Release tested: {fingerprint}\n\
         Test report: {report}\n  version {version}\n  SHA-256 {sha256}\n  {report_url}\n\
         Model card: {card_url}\n\n\
         Approve or reject in CodePipeline, or: promote approve {model} --stage prod --comment \"...\" \
         (it reads that version of the report and checks its SHA-256 before it answers)",
        passed = confirmed.passed,
        total = confirmed.total,
        execution = record.execution_id,
        fingerprint = record.fingerprint,
        report = record.report,
        sha256 = record.report_sha256,
        report_url = report_console_url(package, &record.report, version),
        card_url = card_console_url(package),
        model = package.group(),
    )
}

/// The output variables of a passed run, under TestModel's namespace: the prod approval links the
/// report at its version (its key in the evidence bucket, which the template knows) and shows its
/// digest, the release, the card and the results of exactly this version (`infra/pipeline.json`
/// lists them with their longest values, which the approval's link and text are checked to fit in).
pub(super) fn evidence(package: &ModelPackageArn, confirmed: &Confirmed) -> OutputVariables {
    let record = &confirmed.record;
    OutputVariables::from([
        ("ReportKey".to_owned(), record.report.key().to_owned()),
        ("ReportVersion".to_owned(), record.report_version.clone().unwrap_or_default()),
        ("ReportSha256".to_owned(), record.report_sha256.clone()),
        ("ReleaseFingerprint".to_owned(), record.fingerprint.to_string()),
        ("ModelCardUrl".to_owned(), card_console_url(package)),
        ("TestSummary".to_owned(), format!("{}/{} test cases passed, slowest {} ms", confirmed.passed, confirmed.total, confirmed.slowest_ms)),
    ])
}

/// That version of the report in the S3 console. Group names, job ids and S3's version ids need
/// no escaping in a query string.
fn report_console_url(package: &ModelPackageArn, uri: &S3Uri, version: &str) -> String {
    format!("https://s3.console.aws.amazon.com/s3/object/{}?region={}&prefix={}&versionId={version}", uri.bucket(), package.region(), uri.key())
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
