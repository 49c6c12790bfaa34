//! The test cases, one by one, and the report of a run: where it goes (once, a key per attempt,
//! under Object Lock) and how the model card takes it.

use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::deployment::card::{card_of, CardLookup};
use crate::domain::deploy::TestCase;
use crate::domain::evidence::{base64_sha256_to_hex, REPORT_VERSION_MAX};
use crate::domain::fingerprint::ReleaseFingerprint;
use crate::domain::ids::{ModelPackageArn, S3Uri};
use crate::domain::ledger::TestRecord;
use crate::domain::naming::hex_sha256;
use crate::ports::{Endpoints, FailureKind, PortError};

use super::{TestError, TestRun};

/// SageMaker cuts a real-time invocation off after 60 seconds: no case waits longer.
const INVOKE_CAP: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    pub name: String,
    pub passed: bool,
    pub status: Option<u16>,
    pub latency_ms: u64,
    pub failure: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestReport {
    pub model_package_arn: String,
    /// The release the cases judged, as the service fingerprinted it at promotion.
    pub release_fingerprint: ReleaseFingerprint,
    pub stage: String,
    pub endpoint: String,
    pub execution_id: String,
    pub job_id: String,
    pub tested_at: String,
    pub passed: usize,
    pub failed: usize,
    pub cases: Vec<CaseResult>,
}

/// How long a case may wait for its answer: its latency bound, within SageMaker's own limit.
pub(super) fn case_bound(case: &TestCase) -> Duration {
    Duration::from_millis(case.max_latency_ms).min(INVOKE_CAP)
}

/// One case. An answer that does not come within the case's bound fails it; an invocation that
/// fails without an answer of the model (throttled, refused) is an error, not a result.
pub(super) async fn run_case(endpoints: &dyn Endpoints, endpoint: &str, case: &TestCase, inference_id: &str) -> Result<CaseResult, TestError> {
    let bound = case_bound(case);
    let started = Instant::now();
    let answer = tokio::time::timeout(bound, endpoints.invoke(endpoint, &case.content_type, case.payload.as_bytes(), inference_id)).await;
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (status, failure) = match answer {
        Err(_) => (None, Some(format!("no answer within {} ms", bound.as_millis()))),
        Ok(Err(error)) => return Err(error.into()),
        Ok(Ok(answer)) => (Some(answer.status), check(case, answer.status, &answer.body, latency_ms)),
    };
    Ok(CaseResult { name: case.name.clone(), passed: failure.is_none(), status, latency_ms, failure })
}

fn check(case: &TestCase, status: u16, body: &[u8], latency_ms: u64) -> Option<String> {
    if status != case.expect_status {
        return Some(format!("status {status}, expected {}", case.expect_status));
    }
    if let Some(expected) = &case.expect_body_contains {
        if !String::from_utf8_lossy(body).contains(expected.as_str()) {
            return Some(format!("response lacks {expected:?}"));
        }
    }
    (latency_ms > case.max_latency_ms).then(|| format!("took {latency_ms} ms, more than {} ms", case.max_latency_ms))
}

/// Keys a job tries for its report: each delivery of a job writes a new attempt, the first key
/// that holds nothing yet.
const REPORT_ATTEMPTS: u32 = 20;

/// Where the reports of a version's test runs go, in the evidence bucket.
pub(super) fn report_prefix(package: &ModelPackageArn) -> String {
    format!("reports/{}/{}/test-", package.group(), package.version())
}

/// The report of `job_id`'s `attempt`-th run: a key of its own, so no attempt writes over another.
pub(super) fn report_uri(bucket: &str, package: &ModelPackageArn, job_id: &str, attempt: u32) -> Result<S3Uri, TestError> {
    let key = format!("{}{job_id}-attempt-{attempt}.json", report_prefix(package));
    S3Uri::new(bucket, &key).map_err(|e| TestError::Aws(PortError::new("PutObject", FailureKind::Terminal, e.to_string())))
}

/// A report as S3 stored it: the version, and the SHA-256 of its bytes (hex).
pub(super) struct StoredReport {
    pub uri: S3Uri,
    pub version_id: String,
    pub sha256: String,
}

impl TestRun<'_> {
    /// Writes the report under the first attempt key that holds nothing, locked for the
    /// retention; S3's SHA-256 of what it stored must be ours.
    pub(super) async fn store_report(&self, report: &TestReport) -> Result<StoredReport, TestError> {
        let body = serde_json::to_vec_pretty(report).expect("report serializes");
        let sha256 = hex_sha256(&body);
        let retain_until = Utc::now() + chrono::Duration::days(i64::from(self.retention_days));
        for attempt in 1..=REPORT_ATTEMPTS {
            let uri = report_uri(self.bucket, self.package(), &self.job.id, attempt)?;
            let stored = match self.ports.artifacts.put_once(&uri, body.clone(), "application/json", retain_until).await {
                Err(taken) if taken.kind == FailureKind::Conflict => continue,
                written => written?,
            };
            if base64_sha256_to_hex(&stored.sha256).as_deref() != Some(sha256.as_str()) {
                return Err(TestError::EvidenceNotStored(format!("S3 reports SHA-256 {} for {uri}, not the report's {sha256}", stored.sha256)));
            }
            if stored.version_id.is_empty() || stored.version_id.len() > REPORT_VERSION_MAX {
                return Err(TestError::EvidenceNotStored(format!("{uri} was stored as version `{}`: is {} versioned?", stored.version_id, self.bucket)));
            }
            info!(job_id = %self.job.id, package = %self.package(), report = %uri, version = %stored.version_id, sha256 = %sha256, decision = "report-stored", "tests");
            return Ok(StoredReport { uri, version_id: stored.version_id, sha256 });
        }
        Err(TestError::EvidenceNotStored(format!("the {REPORT_ATTEMPTS} report keys of job {} hold reports already", self.job.id)))
    }

    /// The report joins the card's evaluation details, in a new card version, unless it is
    /// there already; a card that describes another version is refused, not updated.
    pub(super) async fn add_to_card(&self, report: &TestReport, record: &TestRecord) -> Result<(), TestError> {
        match card_of(self.ports.cards.as_ref(), self.package()).await? {
            CardLookup::Found { name, card } => Ok(add_to_card(self.ports.cards.as_ref(), &name, card.content, report, record).await?),
            CardLookup::Absent => {
                warn!(job_id = %self.job.id, package = %self.package(), decision = "no-model-card", "tests");
                Ok(())
            }
            CardLookup::DescribesAnother { name, describes } => {
                let refusal = TestError::CardOfAnotherVersion { card: name, package: self.package().clone(), describes };
                Err(self.refuse(refusal, "model-card").await)
            }
        }
    }
}

/// Adds the run to the card `name`'s evaluation details, naming the report's version, digest and
/// release, unless that report is there already (a job delivered again).
async fn add_to_card(
    cards: &dyn crate::ports::ModelCards,
    name: &str,
    mut content: Value,
    report: &TestReport,
    record: &TestRecord,
) -> crate::ports::PortResult<()> {
    let version = record.report_version.as_deref().unwrap_or("none");
    let evidence = format!("report {} version {version} sha256 {}", record.report, record.report_sha256);
    let observed = |detail: &Value| detail["evaluation_observation"].as_str().is_some_and(|o| o.contains(&evidence));
    if content["evaluation_details"].as_array().is_some_and(|details| details.iter().any(observed)) {
        return Ok(());
    }
    let evaluation = json!({
        "name": format!("{} tests of version {}", report.stage, record.package.version()),
        "evaluation_observation": format!(
            "{} passed, {} failed on release {} in execution {}; {evidence}",
            report.passed, report.failed, record.fingerprint, record.execution_id
        ),
        "metric_groups": [{
            "name": "test cases",
            "metric_data": report.cases.iter().map(|c| json!({ "name": c.name, "type": "boolean", "value": c.passed })).collect::<Vec<_>>(),
        }],
    });
    match content.get_mut("evaluation_details").and_then(Value::as_array_mut) {
        Some(details) => details.push(evaluation),
        None => content["evaluation_details"] = json!([evaluation]),
    }
    cards.update(name, &content, None).await?;
    Ok(())
}
