//! The test cases, one by one, and the report of a run: where it goes and how the model card
//! takes it.

use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::domain::deploy::TestCase;
use crate::domain::ids::{ModelPackageArn, S3Uri};
use crate::ports::{Endpoints, FailureKind, ModelCards, PortError};

use super::TestError;

/// SageMaker cuts a real-time invocation off after 60 seconds: no case waits longer.
const INVOKE_CAP: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseResult {
    pub name: String,
    pub passed: bool,
    pub status: Option<u16>,
    pub latency_ms: u64,
    pub failure: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestReport {
    pub model_package_arn: String,
    pub stage: String,
    pub endpoint: String,
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

/// Where the reports of a version's test runs go, in the central bucket.
pub(super) fn report_prefix(package: &ModelPackageArn) -> String {
    format!("reports/{}/{}/test-", package.group(), package.version())
}

pub(super) fn report_uri(bucket: &str, package: &ModelPackageArn, job_id: &str) -> Result<S3Uri, TestError> {
    let key = format!("{}{job_id}.json", report_prefix(package));
    S3Uri::new(bucket, &key).map_err(|e| TestError::Aws(PortError::new("PutObject", FailureKind::Terminal, e.to_string())))
}

/// The report joins the card's evaluation details, in a new card version, unless it is there
/// already (the same job delivered again writes the same report).
pub(super) async fn add_to_card(cards: &dyn ModelCards, package: &ModelPackageArn, report: &TestReport, uri: &S3Uri) -> Result<(), TestError> {
    let Some((name, card)) = crate::deployment::card::version_card(cards, package).await? else {
        return Ok(());
    };
    let mut content = card.content;
    let observed = |detail: &Value| detail["evaluation_observation"].as_str().is_some_and(|o| o.ends_with(&format!("report {uri}")));
    if content["evaluation_details"].as_array().is_some_and(|details| details.iter().any(observed)) {
        return Ok(());
    }
    let evaluation = json!({
        "name": format!("{} tests of version {}", report.stage, package.version()),
        "evaluation_observation": format!("{} passed, {} failed; report {uri}", report.passed, report.failed),
        "metric_groups": [{
            "name": "test cases",
            "metric_data": report.cases.iter().map(|c| json!({ "name": c.name, "type": "boolean", "value": c.passed })).collect::<Vec<_>>(),
        }],
    });
    match content.get_mut("evaluation_details").and_then(Value::as_array_mut) {
        Some(details) => details.push(evaluation),
        None => content["evaluation_details"] = json!([evaluation]),
    }
    cards.update(&name, &content, None).await?;
    Ok(())
}
