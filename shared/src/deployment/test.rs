//! test-model: runs the stage's test cases against its endpoint; a failure rolls it back.

use std::time::Instant;

use chrono::{SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use tracing::info;

use crate::domain::deploy::{endpoint_name, PipelineJob, TestCase};
use crate::domain::event::ApprovalStatus;
use crate::domain::ids::{ModelPackageArn, S3Uri};
use crate::domain::ledger::DeploymentState;
use crate::ports::{Endpoints, ModelCards};

use super::deploy::restore;
use super::{answer_job, audit, DeployConfig, DeployError, DeployPorts, JobOutcome, Step};

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

pub async fn handle_test_job(ports: &DeployPorts, config: &DeployConfig, event: &Value) -> Result<JobOutcome, DeployError> {
    let job_id = PipelineJob::id_of(event).ok_or(crate::domain::deploy::JobError::Missing("CodePipeline.job.id"))?;
    let step = match PipelineJob::parse(event) {
        Ok(job) => run_tests(ports, config, &job).await,
        Err(invalid) => Err(invalid.into()),
    };
    answer_job(ports.jobs.as_ref(), job_id, step).await
}

pub async fn run_tests(ports: &DeployPorts, config: &DeployConfig, job: &PipelineJob) -> Result<Step, DeployError> {
    let package = &job.parameters.model_package_arn;
    let stage = job.parameters.stage;
    let settings = config.stages.stage(stage);
    let endpoint = endpoint_name(package.group(), stage);
    let endpoints = ports.stages.endpoints(settings).await?;
    let mut cases = Vec::with_capacity(settings.tests.len());
    for (index, case) in settings.tests.iter().enumerate() {
        let inference_id: String = format!("{}-{index}", job.id).chars().take(64).collect();
        cases.push(run_case(endpoints.as_ref(), &endpoint, case, &inference_id).await);
    }
    let failed: Vec<&CaseResult> = cases.iter().filter(|c| !c.passed).collect();
    let report = TestReport {
        model_package_arn: package.to_string(),
        stage: stage.to_string(),
        endpoint: endpoint.clone(),
        job_id: job.id.clone(),
        tested_at: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        passed: cases.len() - failed.len(),
        failed: failed.len(),
        cases: cases.clone(),
    };
    let report_uri = report_uri(&config.artifact_bucket, package, &job.id)?;
    let body = serde_json::to_vec_pretty(&report).expect("report serializes");
    ports.artifacts.put(&report_uri, body, "application/json").await?;
    add_to_card(ports.cards.as_ref(), package, &report, &report_uri).await?;
    let summary = json!({ "report": report_uri.to_string(), "passed": report.passed, "failed": report.failed });
    audit(ports.ledger.as_ref(), package, &job.id, if failed.is_empty() { "tests-passed" } else { "tests-failed" }, summary).await?;
    info!(job_id = %job.id, package = %package, endpoint, passed = report.passed, failed = report.failed, decision = "tested", "tests");
    if failed.is_empty() {
        ports.approvers.notify(&format!("Prod approval waits: {}", package.group()), &approval_request(package, &report, &report_uri)).await?;
        return Ok(Step::Done { summary: format!("{}/{} test cases passed on {endpoint}; report {report_uri}", report.passed, cases.len()) });
    }
    let names = failed.iter().map(|c| format!("{}: {}", c.name, c.failure.as_deref().unwrap_or("failed"))).collect::<Vec<_>>().join("; ");
    let restored = roll_back(ports, endpoints.as_ref(), stage, &endpoint, package, &job.id).await?;
    let reason = format!("failed tests on {endpoint}: {names}; report {report_uri}");
    let central = ports.central_registry.describe_package(package).await?;
    ports.central_registry.set_approval(&central, ApprovalStatus::Rejected, &reason, &[]).await?;
    audit(ports.ledger.as_ref(), package, &job.id, "rejected-by-tests", json!({ "reason": reason })).await?;
    Err(DeployError::TestsFailed { failed: failed.len(), total: cases.len(), names, endpoint, restored, report: report_uri.to_string() })
}

/// What a governance officer reads before approving prod: the results and where to look.
fn approval_request(package: &ModelPackageArn, report: &TestReport, uri: &S3Uri) -> String {
    let region = package.region();
    let card = crate::domain::card::card_name(package.group());
    format!(
        "{package} passed {passed} of {total} test cases on {endpoint} and waits for the prod approval.\n\n\
         Test report: https://s3.console.aws.amazon.com/s3/object/{bucket}?region={region}&prefix={key}\n\
         Model card: https://{region}.console.aws.amazon.com/sagemaker/home?region={region}#/model-cards/{card}\n\n\
         Approve or reject in CodePipeline, or: promote approve {model} --stage prod --comment \"...\"",
        passed = report.passed,
        total = report.passed + report.failed,
        endpoint = report.endpoint,
        bucket = uri.bucket(),
        key = uri.key(),
        model = package.group(),
    )
}

async fn run_case(endpoints: &dyn Endpoints, endpoint: &str, case: &TestCase, inference_id: &str) -> CaseResult {
    let started = Instant::now();
    let answer = endpoints.invoke(endpoint, &case.content_type, case.payload.as_bytes(), inference_id).await;
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (status, failure) = match answer {
        Err(error) => (None, Some(format!("invocation failed: {error}"))),
        Ok(answer) => (Some(answer.status), check(case, answer.status, &answer.body, latency_ms)),
    };
    CaseResult { name: case.name.clone(), passed: failure.is_none(), status, latency_ms, failure }
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

fn report_uri(bucket: &str, package: &ModelPackageArn, job_id: &str) -> Result<S3Uri, DeployError> {
    let key = format!("reports/{}/{}/test-{job_id}.json", package.group(), package.version());
    S3Uri::new(bucket, &key).map_err(|e| DeployError::Aws(crate::ports::PortError::new("PutObject", crate::ports::FailureKind::Terminal, e.to_string())))
}

async fn roll_back(
    ports: &DeployPorts,
    endpoints: &dyn Endpoints,
    stage: crate::domain::ids::Stage,
    endpoint: &str,
    package: &ModelPackageArn,
    job_id: &str,
) -> Result<String, DeployError> {
    let record = ports.ledger.deployment(stage, endpoint).await?;
    let previous = record.as_ref().filter(|r| &r.package == package).and_then(|r| r.previous_config.clone());
    let restored = restore(endpoints, endpoint, previous.as_deref()).await?;
    if let Some(mut record) = record {
        record.state = DeploymentState::RolledBack;
        record.at = Utc::now();
        ports.ledger.record_deployment(&record).await?;
    }
    audit(ports.ledger.as_ref(), package, job_id, "rolled-back", json!({ "endpoint": endpoint, "restored": restored })).await?;
    Ok(restored)
}

/// The report joins the card's evaluation details, in a new card version.
async fn add_to_card(cards: &dyn ModelCards, package: &ModelPackageArn, report: &TestReport, uri: &S3Uri) -> Result<(), DeployError> {
    let name = crate::domain::card::card_name(package.group());
    let Some(card) = cards.describe(&name).await? else { return Ok(()) };
    let mut content = card.content;
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
