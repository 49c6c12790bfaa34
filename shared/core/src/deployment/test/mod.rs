//! test-model: runs the stage's test cases against its endpoint; a failure rejects the version
//! and rolls the endpoint back (`aftermath`). The report and the evidence the prod approval shows
//! are in `report` and `evidence`.

mod aftermath;
mod evidence;
mod report;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::domain::audit::{AuditAction, AuditEntry};
use crate::domain::deploy::{deployment_name, PipelineJob, StageSettings};
use crate::domain::ids::{ModelPackageArn, S3Uri, Stage};
use crate::failure::Failure;
use crate::ports::{EndpointStatus, Endpoints, PortError};

use super::job::{answer_by, run_job, ActionError, JobOutcome, Step};
use super::{DeployConfig, DeployPorts};

#[cfg(any(test, feature = "fakes"))]
pub use evidence::published_variables;
use evidence::{approval_request, evidence};
use report::{add_to_card, case_bound, report_prefix, report_uri, run_case};
pub use report::{CaseResult, TestReport};

/// What ends a test run without a pass, as test-model fails its job.
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    #[error("the continuation token is not this function's: {0}")]
    BadContinuation(String),
    #[error("{failed} of {total} test cases failed on {endpoint} ({names}); {aftermath}; report: {report}")]
    TestsFailed { failed: usize, total: usize, names: String, endpoint: String, aftermath: String, report: String },
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
            Self::TestsFailed { .. } => "TestsFailed",
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
    /// The cases passed, and the report is written and in the model card: the rest of the pass
    /// is done from this, without testing again.
    Passed(Pass),
}

/// A passed run whose report is written and in the model card: what recording the pass, telling
/// the approvers and answering the job need, small enough for a continuation token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Pass {
    report: S3Uri,
    /// The job that ran the cases: its id keys the ledger entry, which a later job writes once.
    tested_by: String,
    passed: usize,
    total: usize,
    slowest_ms: u64,
}

impl Pass {
    fn of(report: &TestReport, uri: &S3Uri) -> Self {
        Self {
            report: uri.clone(),
            tested_by: report.job_id.clone(),
            passed: report.passed,
            total: report.cases.len(),
            slowest_ms: report.cases.iter().map(|c| c.latency_ms).max().unwrap_or_default(),
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
/// failing the stage: to test again as long as nothing was done about a verdict, and once the
/// model card holds a pass, to finish recording it.
async fn test_step(ports: &DeployPorts, config: &DeployConfig, job: &PipelineJob, deadline: DateTime<Utc>) -> Result<Step, TestError> {
    let not_ours = |token: &str| TestError::BadContinuation(crate::domain::ids::truncated(token));
    let progress: Progress = match job.continuation.as_deref() {
        None => Progress { phase: Phase::Retest, out_of_time: 0 },
        Some(token) => serde_json::from_str(token).map_err(|_| not_ours(token))?,
    };
    let run = TestRun::new(ports, config, job, deadline);
    let pass = match &progress.phase {
        Phase::Retest => match run.tested().await {
            Ok(pass) => pass,
            Err(error) => return run.come_back(&progress, Phase::Retest, error),
        },
        Phase::Passed(pass) if run.reports(&pass.report) => pass.clone(),
        Phase::Passed(_) => return Err(not_ours(job.continuation.as_deref().unwrap_or_default())),
    };
    match within(run.answer_by, "recording the passed tests", run.passed(&pass)).await {
        Err(error) => run.come_back(&progress, Phase::Passed(pass), error),
        done => done,
    }
}

struct TestRun<'a> {
    ports: &'a DeployPorts,
    settings: &'a StageSettings,
    bucket: &'a str,
    job: &'a PipelineJob,
    endpoint: String,
    /// The test cases are over by then, and the aftermath by `answer_by`.
    tests_by: Instant,
    answer_by: Instant,
}

impl<'a> TestRun<'a> {
    fn new(ports: &'a DeployPorts, config: &'a DeployConfig, job: &'a PipelineJob, deadline: DateTime<Utc>) -> Self {
        let stage = job.parameters.stage;
        let settings = config.stages.stage(stage);
        let now = Instant::now();
        let answer_by = answer_by(deadline);
        let tests_by = answer_by.checked_sub(AFTERMATH_TIME).unwrap_or(now).max(now);
        let endpoint = settings.endpoint_name(job.parameters.model_package_arn.group(), stage);
        Self { ports, settings, bucket: &config.artifact_bucket, job, endpoint, tests_by, answer_by }
    }

    fn package(&self) -> &ModelPackageArn {
        &self.job.parameters.model_package_arn
    }

    fn stage(&self) -> Stage {
        self.job.parameters.stage
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

    /// Runs the cases; a pass's report is written and added to the model card, a failure is
    /// dealt with and ends the job.
    async fn tested(&self) -> Result<Pass, TestError> {
        let (report, uri) = self.run().await?;
        within(self.answer_by, "adding the report to the model card", add_to_card(self.ports.cards.as_ref(), self.package(), &report, &uri)).await?;
        Ok(Pass::of(&report, &uri))
    }

    async fn run(&self) -> Result<(TestReport, S3Uri), TestError> {
        let needed: Duration = SETUP_TIME + self.settings.tests.iter().map(case_bound).sum::<Duration>();
        let left = self.tests_by.saturating_duration_since(Instant::now());
        if needed > left {
            return Err(TestError::TestsOutlastInvocation { needed_ms: needed.as_millis(), left_ms: left.as_millis() });
        }
        let (endpoints, cases) = within(self.tests_by, "testing", self.test_cases()).await?;
        let failed: Vec<&CaseResult> = cases.iter().filter(|c| !c.passed).collect();
        let report = TestReport {
            model_package_arn: self.package().to_string(),
            stage: self.stage().to_string(),
            endpoint: self.endpoint.clone(),
            job_id: self.job.id.clone(),
            tested_at: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
            passed: cases.len() - failed.len(),
            failed: failed.len(),
            cases: cases.clone(),
        };
        let uri = report_uri(self.bucket, self.package(), &self.job.id)?;
        let verdict = if failed.is_empty() { "tests-passed" } else { "tests-failed" };
        info!(job_id = %self.job.id, package = %self.package(), endpoint = %self.endpoint, passed = report.passed, failed = report.failed, decision = verdict, "tests");
        if failed.is_empty() {
            within(self.answer_by, "writing the report", self.write_report(&report, &uri)).await?;
            return Ok((report, uri));
        }
        let names = failed.iter().map(|c| format!("{}: {}", c.name, c.failure.as_deref().unwrap_or("failed"))).collect::<Vec<_>>().join("; ");
        let aftermath = self.failed(endpoints.as_ref(), &report, &uri, &names).await;
        Err(TestError::TestsFailed {
            failed: failed.len(),
            total: cases.len(),
            names,
            endpoint: self.endpoint.clone(),
            aftermath: aftermath.describe(),
            report: uri.to_string(),
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

    /// Records a pass that the model card holds. A job that begins it again writes the ledger
    /// entry once (it is the testing job's); the approvers are told last, when all else is done.
    async fn passed(&self, pass: &Pass) -> Result<Step, TestError> {
        let recorded = json!({ "report": pass.report.to_string(), "passed": pass.passed, "failed": pass.total - pass.passed });
        self.ports.audit.append(&AuditEntry::now(self.package(), &pass.tested_by, AuditAction::TestsPassed, recorded)).await?;
        let package = self.package();
        self.ports.approvers.notify(&format!("Prod approval waits: {}", package.group()), &approval_request(package, pass, &self.endpoint)).await?;
        Ok(Step::Done {
            summary: format!("{}/{} test cases passed on {}; report {}", pass.passed, pass.total, self.endpoint, pass.report),
            variables: evidence(package, pass),
        })
    }

    async fn audit(&self, action: AuditAction, detail: Value) -> Result<(), TestError> {
        Ok(self.ports.audit.append(&AuditEntry::now(self.package(), &self.job.id, action, detail)).await?)
    }
}
/// `work`, unless `until` comes first.
async fn within<T>(until: Instant, doing: &str, work: impl Future<Output = Result<T, TestError>>) -> Result<T, TestError> {
    tokio::time::timeout_at(until, work).await.unwrap_or_else(|_| Err(TestError::OutOfTime(doing.to_owned())))
}
