//! test-model: runs the stage's test cases against its endpoint; a failure rejects the version
//! and rolls the endpoint back (`aftermath`). Each run's report is evidence, written once
//! (`report`), and the verdict goes to the ledger, whose word alone lets a later job finish a
//! pass (`verdict`); the approval's evidence is in `evidence`.

mod aftermath;
mod evidence;
mod report;
#[cfg(test)]
mod tests;
mod verdict;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::domain::audit::{AuditAction, AuditEntry};
use crate::domain::deploy::{deployment_name, PipelineJob, StageSettings};
use crate::domain::fingerprint::ReleaseFingerprint;
use crate::domain::ids::{ModelPackageArn, S3Uri, Stage};
use crate::domain::ledger::TestRecord;
use crate::failure::Failure;
use crate::ports::{EndpointStatus, Endpoints, PortError};

use super::gate::{self, GateError, Refusal};
use super::job::{answer_by, run_job, ActionError, JobOutcome, Step};
use super::{DeployConfig, DeployPorts};

#[cfg(any(test, feature = "fakes"))]
pub use evidence::published_variables;
use evidence::{approval_request, evidence};
use report::{case_bound, report_prefix, run_case};
pub use report::{CaseResult, TestReport};

/// What ends a test run without a pass, as test-model fails its job.
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    #[error("the continuation token is not this function's: {0}")]
    BadContinuation(String),
    #[error("the continuation token says the tests of {package} passed, but {reason}: a token is the caller's word, the ledger is test-model's; nothing was recorded, no one was told")]
    ForgedContinuation { package: ModelPackageArn, reason: String },
    #[error("the job names no pipeline execution (UserParameters has no execution_id): a verdict could not be tied to the execution whose prod approval and deployment rely on it; nothing was tested")]
    NoExecution,
    #[error("refused, nothing was tested: {0}")]
    Refused(Refusal),
    #[error("{failed} of {total} test cases failed on {endpoint} ({names}); {aftermath}; report: {report}")]
    TestsFailed { failed: usize, total: usize, names: String, endpoint: String, aftermath: String, report: String },
    #[error("the tests of {package} in this execution failed already (job {job}, report {report}): the first verdict stands")]
    FailedBefore { package: ModelPackageArn, job: String, report: S3Uri },
    #[error("the report could not be stored as evidence: {0}")]
    EvidenceNotStored(String),
    #[error("the recorded pass of {package} cannot be shown to the approvers: {reason}")]
    EvidenceChanged { package: ModelPackageArn, reason: String },
    #[error("the model card {card} describes {}, not {package}: it was not updated", describes.as_deref().unwrap_or("no version"))]
    CardOfAnotherVersion { card: String, package: ModelPackageArn, describes: Option<String> },
    #[error("endpoint {endpoint} is {found}, not InService on {expected}, the config deploy-model made for {package}: nothing was tested and the endpoint was left as it is; run DeployTest again, then TestModel")]
    NotUnderTest { endpoint: String, package: ModelPackageArn, expected: String, found: String },
    #[error("the endpoint check and the test cases may take {needed_ms} ms, but this invocation leaves them {left_ms} ms (the rest is kept for the report, the rollback and the answer): raise test-model's timeout or lower the cases' max_latency_ms")]
    TestsOutlastInvocation { needed_ms: u128, left_ms: u128 },
    #[error("the invocation ran out of time while {0}")]
    OutOfTime(String),
    #[error("{invocations} invocations in a row ran out of time, the last while {doing}: raise test-model's timeout, lower the cases' max_latency_ms, or look for the AWS call that hangs")]
    OutOfTimeAgain { doing: String, invocations: u32 },
    #[error("the ledger has no deployment of {package} on {endpoint}, so the config to return to is unknown")]
    NoDeploymentRecord { endpoint: String, package: ModelPackageArn },
    #[error(transparent)]
    Aws(#[from] PortError),
}

impl Failure for TestError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Aws(port) => port.is_retryable(),
            Self::OutOfTime(_) => true,
            _ => false,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::BadContinuation(_) => "BadContinuation",
            Self::ForgedContinuation { .. } => "ForgedContinuation",
            Self::NoExecution => "NoExecution",
            Self::Refused(refusal) => refusal.name(),
            Self::TestsFailed { .. } | Self::FailedBefore { .. } => "TestsFailed",
            Self::EvidenceNotStored(_) => "EvidenceNotStored",
            Self::EvidenceChanged { .. } => "EvidenceChanged",
            Self::CardOfAnotherVersion { .. } => "CardOfAnotherVersion",
            Self::NotUnderTest { .. } => "EndpointNotUnderTest",
            Self::TestsOutlastInvocation { .. } => "TestsOutlastInvocation",
            Self::OutOfTime(_) => "OutOfTime",
            Self::OutOfTimeAgain { .. } => "OutOfTimeAgain",
            Self::NoDeploymentRecord { .. } => "NoDeploymentRecord",
            Self::Aws(port) => port.name(),
        }
    }
}

/// Kept before the test cases for the deploy role's session and the check of the endpoint.
const SETUP_TIME: Duration = Duration::from_secs(10);
/// Kept after the test cases for the report, the card, the rejection and the rollback.
const AFTERMATH_TIME: Duration = Duration::from_secs(30);
/// Invocations in a row that run out of time before the job fails: one may have met a hung
/// call, the second shows that the work does not fit in an invocation.
const OUT_OF_TIME_LIMIT: u32 = 2;

/// What a continuation token carries between two invocations of the same job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Progress {
    #[serde(flatten)]
    phase: Phase,
    /// The invocations in a row, up to the one that answered with this token, that ran out of time.
    #[serde(default, skip_serializing_if = "is_zero")]
    out_of_time: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
enum Phase {
    /// No verdict, or none acted on (a transient failure came first): the cases run again.
    Retest,
    /// The ledger holds a pass: the rest of it is done from the ledger's record, without testing
    /// again. The token only says which record; it is the caller's word until the ledger agrees.
    Passed(Pass),
}

/// The passed run a token names: the ledger's record must name the same job and report, at the
/// same version and digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Pass {
    report: S3Uri,
    version: String,
    sha256: String,
    /// The job that ran the cases and recorded the verdict.
    tested_by: String,
}

impl Pass {
    fn of(record: &TestRecord) -> Self {
        Self {
            report: record.report.clone(),
            version: record.report_version.clone().unwrap_or_default(),
            sha256: record.report_sha256.clone(),
            tested_by: record.job_id.clone(),
        }
    }
}

fn is_zero(count: &u32) -> bool {
    *count == 0
}

impl Progress {
    fn token(&self) -> String {
        serde_json::to_string(self).expect("progress serializes")
    }
}

/// Answers the job before `deadline`, the end of the invocation.
pub async fn handle_test_job(ports: &DeployPorts, config: &DeployConfig, event: &Value, deadline: DateTime<Utc>) -> Result<JobOutcome, ActionError> {
    run_job(ports.jobs.as_ref(), event, |job| async move { test_step(ports, config, &job, deadline).await }).await
}

/// One invocation of a test run; a transient failure asks CodePipeline to come back instead of
/// failing the stage: to test again as long as the ledger holds no verdict, and once it holds a
/// pass, to finish it. A verdict the ledger holds for the execution is final: a job delivered
/// again, or a retry of the stage, keeps it.
async fn test_step(ports: &DeployPorts, config: &DeployConfig, job: &PipelineJob, deadline: DateTime<Utc>) -> Result<Step, TestError> {
    let not_ours = |token: &str| TestError::BadContinuation(crate::domain::ids::truncated(token));
    let progress: Progress = match job.continuation.as_deref() {
        None => Progress { phase: Phase::Retest, out_of_time: 0 },
        Some(token) => serde_json::from_str(token).map_err(|_| not_ours(token))?,
    };
    let Some(execution) = job.parameters.execution_id.as_deref() else {
        return Err(refuse(ports, job, TestError::NoExecution, "pipeline-execution").await);
    };
    let run = TestRun::new(ports, config, job, execution, deadline);
    let recorded = match within(run.answer_by, "reading the ledger", run.recorded()).await {
        Ok(recorded) => recorded,
        Err(error) => return run.come_back(&progress, progress.phase.clone(), error),
    };
    let record = match (&progress.phase, recorded) {
        (Phase::Passed(pass), recorded) => run.confirm(pass, recorded).await?,
        (Phase::Retest, Some(first)) => run.first_verdict(first)?,
        (Phase::Retest, None) => match run.tested().await {
            Ok(record) => record,
            Err(error) => return run.come_back(&progress, Phase::Retest, error),
        },
    };
    match within(run.answer_by, "recording the passed tests", run.passed(&record)).await {
        Err(error) => run.come_back(&progress, Phase::Passed(Pass::of(&record)), error),
        done => done,
    }
}

/// Audits a gate's refusal of the job and hands the refusal back, to fail the job with. The
/// refusal stands even when its entry cannot be written (the log line says so).
async fn refuse(ports: &DeployPorts, job: &PipelineJob, refusal: TestError, gate: &'static str) -> TestError {
    let package = &job.parameters.model_package_arn;
    let at = gate::RefusedAt::job(gate, job);
    if let Err(error) = gate::audit_refused(ports.audit.as_ref(), package, &at, refusal.name(), &refusal.to_string()).await {
        warn!(job_id = %job.id, package = %package, gate, error = %error, decision = "refusal-not-audited", "tests");
    }
    refusal
}

struct TestRun<'a> {
    ports: &'a DeployPorts,
    config: &'a DeployConfig,
    settings: &'a StageSettings,
    /// Where the reports go: versioned, under Object Lock.
    bucket: &'a str,
    retention_days: u32,
    job: &'a PipelineJob,
    execution: &'a str,
    endpoint: String,
    /// The test cases are over by then, and the aftermath by `answer_by`.
    tests_by: Instant,
    answer_by: Instant,
}

impl<'a> TestRun<'a> {
    fn new(ports: &'a DeployPorts, config: &'a DeployConfig, job: &'a PipelineJob, execution: &'a str, deadline: DateTime<Utc>) -> Self {
        let stage = job.parameters.stage;
        let settings = config.stages.stage(stage);
        let now = Instant::now();
        let answer_by = answer_by(deadline);
        let tests_by = answer_by.checked_sub(AFTERMATH_TIME).unwrap_or(now).max(now);
        let endpoint = settings.endpoint_name(job.parameters.model_package_arn.group(), stage);
        let (bucket, retention_days) = (config.evidence_bucket.as_str(), config.evidence_retention_days);
        Self { ports, config, settings, bucket, retention_days, job, execution, endpoint, tests_by, answer_by }
    }

    fn package(&self) -> &ModelPackageArn {
        &self.job.parameters.model_package_arn
    }

    fn stage(&self) -> Stage {
        self.job.parameters.stage
    }

    async fn refuse(&self, refusal: TestError, gate: &'static str) -> TestError {
        refuse(self.ports, self.job, refusal, gate).await
    }

    /// After `error`, a transient one has CodePipeline come back to go on at `next`, unless this
    /// invocation ran out of time as the one before it did: then, and after any other, the job fails.
    fn come_back(&self, progress: &Progress, next: Phase, error: TestError) -> Result<Step, TestError> {
        if !error.is_retryable() {
            return Err(error);
        }
        let out_of_time = match &error {
            TestError::OutOfTime(doing) if progress.out_of_time + 1 >= OUT_OF_TIME_LIMIT => {
                return Err(TestError::OutOfTimeAgain { doing: doing.clone(), invocations: progress.out_of_time + 1 });
            }
            TestError::OutOfTime(_) => progress.out_of_time + 1,
            _ => 0,
        };
        let (decision, summary) = match next {
            Phase::Retest => ("retest", format!("will test again: {error}")),
            Phase::Passed(_) => ("record-pass-again", format!("the tests passed; will finish recording it: {error}")),
        };
        info!(job_id = %self.job.id, package = %self.package(), endpoint = %self.endpoint, decision, error = %error, "tests");
        Ok(Step::Continue { token: Progress { phase: next, out_of_time }.token(), summary })
    }

    /// The release the tests judge: this job is CodePipeline's run of TestModel, and the version
    /// is the release the service promoted, unrevoked and unchanged (the deploy gates' checks).
    async fn release(&self) -> Result<ReleaseFingerprint, TestError> {
        let cleared = within(self.tests_by, "confirming the job and the release", async {
            match gate::clear_test(self.ports, self.config, self.job).await {
                Ok(fingerprint) => Ok(Ok(fingerprint)),
                Err(GateError::Refused(refusal)) => Ok(Err(refusal)),
                Err(GateError::Aws(error)) => Err(error.into()),
            }
        })
        .await?;
        match cleared {
            Ok(fingerprint) => Ok(fingerprint),
            Err(refusal) => Err(self.refuse(TestError::Refused(refusal), "test-model").await),
        }
    }

    /// Runs the cases against the release; a pass's report is stored and its verdict recorded,
    /// a failure is dealt with and ends the job.
    async fn tested(&self) -> Result<TestRecord, TestError> {
        let fingerprint = self.release().await?;
        let report = self.run(&fingerprint).await?;
        let stored = within(self.answer_by, "writing the report", self.store_report(&report)).await?;
        let record = within(self.answer_by, "recording the passed tests", self.record(self.test_record(&report, stored))).await?;
        self.first_verdict(record)
    }

    async fn run(&self, fingerprint: &ReleaseFingerprint) -> Result<TestReport, TestError> {
        let needed: Duration = SETUP_TIME + self.settings.tests.iter().map(case_bound).sum::<Duration>();
        let left = self.tests_by.saturating_duration_since(Instant::now());
        if needed > left {
            return Err(TestError::TestsOutlastInvocation { needed_ms: needed.as_millis(), left_ms: left.as_millis() });
        }
        let (endpoints, cases) = within(self.tests_by, "testing", self.test_cases()).await?;
        let failed: Vec<&CaseResult> = cases.iter().filter(|c| !c.passed).collect();
        let report = TestReport {
            model_package_arn: self.package().to_string(),
            release_fingerprint: fingerprint.clone(),
            stage: self.stage().to_string(),
            endpoint: self.endpoint.clone(),
            execution_id: self.execution.to_owned(),
            job_id: self.job.id.clone(),
            tested_at: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
            passed: cases.len() - failed.len(),
            failed: failed.len(),
            cases: cases.clone(),
        };
        let verdict = if failed.is_empty() { "tests-passed" } else { "tests-failed" };
        info!(job_id = %self.job.id, package = %self.package(), endpoint = %self.endpoint, passed = report.passed, failed = report.failed, decision = verdict, "tests");
        if failed.is_empty() {
            return Ok(report);
        }
        let names = failed.iter().map(|c| format!("{}: {}", c.name, c.failure.as_deref().unwrap_or("failed"))).collect::<Vec<_>>().join("; ");
        let (aftermath, report) = self.failed(endpoints.as_ref(), &report, &names).await;
        Err(TestError::TestsFailed {
            failed: failed.len(),
            total: cases.len(),
            names,
            endpoint: self.endpoint.clone(),
            aftermath: aftermath.describe(),
            report: report.map_or_else(|| "not stored".to_owned(), |r| r.to_string()),
        })
    }

    /// Runs every case against the endpoint, once it is known to run this version. Only answers
    /// of the model count: a throttled or refused invocation ends the run without a verdict.
    async fn test_cases(&self) -> Result<(Arc<dyn Endpoints>, Vec<CaseResult>), TestError> {
        let endpoints = self.ports.stages.endpoints(self.settings).await?;
        self.check_endpoint(endpoints.as_ref()).await?;
        let mut cases = Vec::with_capacity(self.settings.tests.len());
        for (index, case) in self.settings.tests.iter().enumerate() {
            let inference_id: String = format!("{}-{index}", self.job.id).chars().take(64).collect();
            cases.push(run_case(endpoints.as_ref(), &self.endpoint, case, &inference_id).await?);
        }
        Ok((endpoints, cases))
    }

    /// The endpoint must be in service on the config deploy-model made for this version: after a
    /// rollback or a newer deployment, the tests would judge another model.
    async fn check_endpoint(&self, endpoints: &dyn Endpoints) -> Result<(), TestError> {
        let expected = deployment_name(self.package(), self.stage());
        let found = match endpoints.describe_endpoint(&self.endpoint).await? {
            Some(state) if state.status == EndpointStatus::InService && state.config_name == expected => return Ok(()),
            Some(state) => format!("{:?} on {}", state.status, state.config_name),
            None => "absent".to_owned(),
        };
        warn!(job_id = %self.job.id, package = %self.package(), endpoint = %self.endpoint, found = %found, expected = %expected, decision = "not-under-test", "tests");
        Err(TestError::NotUnderTest { endpoint: self.endpoint.clone(), package: self.package().clone(), expected, found })
    }

    /// Whether `uri` is where this version's test reports go.
    fn reports(&self, uri: &S3Uri) -> bool {
        uri.bucket() == self.bucket && uri.key().starts_with(&report_prefix(self.package()))
    }

    /// Finishes a pass the ledger records: the stored report is checked against the record, joins
    /// the model card, and the approvers are told last, when all else is done. A job that does
    /// it again repeats no step that took (the card and the audit entry are written once).
    async fn passed(&self, record: &TestRecord) -> Result<Step, TestError> {
        let confirmed = self.verified(record).await?;
        self.add_to_card(&confirmed.report, record).await?;
        self.ports.audit.append(&AuditEntry::now(self.package(), &record.job_id, AuditAction::TestsPassed, verdict::detail(&confirmed.report, record))).await?;
        let package = self.package();
        self.ports.approvers.notify(&format!("Prod approval waits: {}", package.group()), &approval_request(package, &confirmed, &self.endpoint)).await?;
        Ok(Step::Done {
            summary: format!(
                "{}/{} test cases passed on {}; report {} version {} sha256 {}",
                confirmed.passed,
                confirmed.total,
                self.endpoint,
                record.report,
                record.report_version.as_deref().unwrap_or_default(),
                record.report_sha256
            ),
            variables: evidence(package, &confirmed),
        })
    }

    async fn audit(&self, action: AuditAction, detail: Value) -> Result<(), TestError> {
        Ok(self.ports.audit.append(&AuditEntry::now(self.package(), &self.job.id, action, detail)).await?)
    }

    /// Refuses evidence that is not what the tests wrote, as `EvidenceChanged`.
    async fn evidence_changed(&self, reason: String) -> TestError {
        self.refuse(TestError::EvidenceChanged { package: self.package().clone(), reason }, "test-report").await
    }
}

/// `work`, unless `until` comes first.
async fn within<T>(until: Instant, doing: &str, work: impl Future<Output = Result<T, TestError>>) -> Result<T, TestError> {
    tokio::time::timeout_at(until, work).await.unwrap_or_else(|_| Err(TestError::OutOfTime(doing.to_owned())))
}
