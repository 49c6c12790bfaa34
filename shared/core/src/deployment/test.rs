//! test-model: runs the stage's test cases against its endpoint; a failure rejects the version
//! and rolls the endpoint back.

use crate::failure::Failure;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::domain::deploy::{deployment_name, OutputVariables, PipelineJob, StageSettings, TestCase};
use crate::domain::event::ApprovalStatus;
use crate::domain::ids::{ModelPackageArn, S3Uri, Stage};
use crate::domain::ledger::DeploymentState;
use crate::ports::{EndpointStatus, Endpoints, ModelCards};

use super::deploy::restore;
use super::{answer_by, answer_job, audit, DeployConfig, DeployError, DeployPorts, JobOutcome, Step};

/// Kept before the test cases for the deploy role's session and the check of the endpoint.
const SETUP_TIME: Duration = Duration::from_secs(10);
/// Kept after the test cases for the report, the card, the rejection and the rollback.
const AFTERMATH_TIME: Duration = Duration::from_secs(30);
/// SageMaker cuts a real-time invocation off after 60 seconds: no case waits longer.
const INVOKE_CAP: Duration = Duration::from_secs(60);
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

/// Answers the job before `deadline`, the end of the invocation.
pub async fn handle_test_job(ports: &DeployPorts, config: &DeployConfig, event: &Value, deadline: DateTime<Utc>) -> Result<JobOutcome, DeployError> {
    let job_id = PipelineJob::id_of(event).ok_or(crate::domain::deploy::JobError::Missing("CodePipeline.job.id"))?;
    let step = match PipelineJob::parse(event) {
        Ok(job) => test_step(ports, config, &job, deadline).await,
        Err(invalid) => Err(invalid.into()),
    };
    answer_job(ports.jobs.as_ref(), job_id, step).await
}

/// One invocation of a test run; a transient failure asks CodePipeline to come back instead of
/// failing the stage: to test again as long as nothing was done about a verdict, and once the
/// model card holds a pass, to finish recording it.
async fn test_step(ports: &DeployPorts, config: &DeployConfig, job: &PipelineJob, deadline: DateTime<Utc>) -> Result<Step, DeployError> {
    let not_ours = |token: &str| DeployError::BadContinuation(crate::domain::ids::truncated(token));
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

/// What a failed run did and did not manage to do after the verdict.
#[derive(Default)]
struct Aftermath {
    done: Vec<String>,
    undone: Vec<String>,
}

impl Aftermath {
    fn note<T>(&mut self, step: String, result: Result<T, DeployError>) -> Option<T> {
        result.map_err(|error| self.undone.push(format!("{step} ({error})"))).ok()
    }

    fn describe(&self) -> String {
        let mut text = if self.done.is_empty() { "the version is not Rejected and the endpoint not rolled back".to_owned() } else { self.done.join("; ") };
        if !self.undone.is_empty() {
            text.push_str(&format!("; NOT DONE, to do by hand: {}", self.undone.join("; ")));
        }
        text
    }
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
    fn come_back(&self, progress: &Progress, next: Phase, error: DeployError) -> Result<Step, DeployError> {
        if !error.is_retryable() {
            return Err(error);
        }
        let out_of_time = match &error {
            DeployError::OutOfTime(doing) if progress.out_of_time + 1 >= OUT_OF_TIME_LIMIT => {
                return Err(DeployError::OutOfTimeAgain { doing: doing.clone(), invocations: progress.out_of_time + 1 });
            }
            DeployError::OutOfTime(_) => progress.out_of_time + 1,
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
    async fn tested(&self) -> Result<Pass, DeployError> {
        let (report, uri) = self.run().await?;
        within(self.answer_by, "adding the report to the model card", add_to_card(self.ports.cards.as_ref(), self.package(), &report, &uri)).await?;
        Ok(Pass::of(&report, &uri))
    }

    async fn run(&self) -> Result<(TestReport, S3Uri), DeployError> {
        let needed: Duration = SETUP_TIME + self.settings.tests.iter().map(case_bound).sum::<Duration>();
        let left = self.tests_by.saturating_duration_since(Instant::now());
        if needed > left {
            return Err(DeployError::TestsOutlastInvocation { needed_ms: needed.as_millis(), left_ms: left.as_millis() });
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
        Err(DeployError::TestsFailed {
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
    async fn test_cases(&self) -> Result<(Arc<dyn Endpoints>, Vec<CaseResult>), DeployError> {
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
    async fn check_endpoint(&self, endpoints: &dyn Endpoints) -> Result<(), DeployError> {
        let expected = deployment_name(self.package(), self.stage());
        let found = match endpoints.describe_endpoint(&self.endpoint).await? {
            Some(state) if state.status == EndpointStatus::InService && state.config_name == expected => return Ok(()),
            Some(state) => format!("{:?} on {}", state.status, state.config_name),
            None => "absent".to_owned(),
        };
        warn!(job_id = %self.job.id, package = %self.package(), endpoint = %self.endpoint, found = %found, expected = %expected, decision = "not-under-test", "tests");
        Err(DeployError::NotUnderTest { endpoint: self.endpoint.clone(), package: self.package().clone(), expected, found })
    }

    /// Whether `uri` is where this version's test reports go.
    fn reports(&self, uri: &S3Uri) -> bool {
        uri.bucket() == self.bucket && uri.key().starts_with(&report_prefix(self.package()))
    }

    /// Records a pass that the model card holds. A job that begins it again writes the ledger
    /// entry once (it is the testing job's); the approvers are told last, when all else is done.
    async fn passed(&self, pass: &Pass) -> Result<Step, DeployError> {
        let recorded = json!({ "report": pass.report.to_string(), "passed": pass.passed, "failed": pass.total - pass.passed });
        audit(self.ports.ledger.as_ref(), self.package(), &pass.tested_by, "tests-passed", recorded).await?;
        let package = self.package();
        self.ports.approvers.notify(&format!("Prod approval waits: {}", package.group()), &approval_request(package, pass, &self.endpoint)).await?;
        Ok(Step::Done {
            summary: format!("{}/{} test cases passed on {}; report {}", pass.passed, pass.total, self.endpoint, pass.report),
            variables: evidence(package, pass),
        })
    }

    /// Records the failure and rejects the version before the endpoint is touched, each step on
    /// its own: one that fails is named in the job's failure, the others still happen.
    async fn failed(&self, endpoints: &dyn Endpoints, report: &TestReport, uri: &S3Uri, names: &str) -> Aftermath {
        let mut aftermath = Aftermath::default();
        let by = self.answer_by;
        aftermath.note("write the report".into(), within(by, "writing the report", self.write_report(report, uri)).await);
        let recorded = within(by, "recording the failed tests", self.audit("tests-failed", summary(report, uri))).await;
        aftermath.note("record the failed tests in the ledger".into(), recorded);
        let carded = within(by, "adding the report to the model card", add_to_card(self.ports.cards.as_ref(), self.package(), report, uri)).await;
        aftermath.note("add the report to the model card".into(), carded);

        let reason = format!("failed tests on {}: {names}; report {uri}", self.endpoint);
        let rejected = within(by, "rejecting the version", self.reject(&reason)).await;
        if aftermath.note(format!("mark {} Rejected", self.package()), rejected).is_some() {
            aftermath.done.push(format!("{} was marked Rejected", self.package()));
            let audited = within(by, "recording the rejection", self.audit("rejected-by-tests", json!({ "reason": reason }))).await;
            aftermath.note("record the rejection in the ledger".into(), audited);
        }

        let restored = within(by, "rolling the endpoint back", self.restore(endpoints)).await;
        if let Some(restored) = aftermath.note(format!("roll {} back", self.endpoint), restored) {
            aftermath.done.push(format!("the endpoint was rolled back to {restored}"));
            let recorded = within(by, "recording the rollback", self.record_rollback(&restored)).await;
            aftermath.note("record the rollback in the ledger".into(), recorded);
        }
        aftermath
    }

    async fn write_report(&self, report: &TestReport, uri: &S3Uri) -> Result<(), DeployError> {
        let body = serde_json::to_vec_pretty(report).expect("report serializes");
        Ok(self.ports.artifacts.put(uri, body, "application/json").await?)
    }

    async fn reject(&self, reason: &str) -> Result<(), DeployError> {
        let central = self.ports.central_registry.describe_package(self.package()).await?;
        self.ports.central_registry.set_approval(&central, ApprovalStatus::Rejected, reason, &[]).await?;
        info!(job_id = %self.job.id, package = %self.package(), decision = "rejected-by-tests", "tests");
        Ok(())
    }

    /// Puts the endpoint back on the config this version replaced, or deletes it when there was none.
    async fn restore(&self, endpoints: &dyn Endpoints) -> Result<String, DeployError> {
        let record = self.ports.ledger.deployment(self.stage(), &self.endpoint).await?;
        let Some(record) = record.filter(|r| &r.package == self.package()) else {
            return Err(DeployError::NoDeploymentRecord { endpoint: self.endpoint.clone(), package: self.package().clone() });
        };
        let restored = restore(endpoints, &self.endpoint, record.previous_config.as_deref()).await?;
        info!(job_id = %self.job.id, package = %self.package(), endpoint = %self.endpoint, restored = %restored, decision = "rolled-back", "tests");
        Ok(restored)
    }

    async fn record_rollback(&self, restored: &str) -> Result<(), DeployError> {
        if let Some(mut record) = self.ports.ledger.deployment(self.stage(), &self.endpoint).await?.filter(|r| &r.package == self.package()) {
            record.state = DeploymentState::RolledBack;
            record.at = Utc::now();
            self.ports.ledger.record_deployment(&record).await?;
        }
        self.audit("rolled-back", json!({ "endpoint": self.endpoint, "restored": restored })).await
    }

    async fn audit(&self, action: &str, detail: Value) -> Result<(), DeployError> {
        audit(self.ports.ledger.as_ref(), self.package(), &self.job.id, action, detail).await
    }
}

/// `work`, unless `until` comes first.
async fn within<T>(until: Instant, doing: &str, work: impl Future<Output = Result<T, DeployError>>) -> Result<T, DeployError> {
    tokio::time::timeout_at(until, work).await.unwrap_or_else(|_| Err(DeployError::OutOfTime(doing.to_owned())))
}

fn summary(report: &TestReport, uri: &S3Uri) -> Value {
    json!({ "report": uri.to_string(), "passed": report.passed, "failed": report.failed })
}

/// What a governance officer reads before approving prod: the results and where to look.
fn approval_request(package: &ModelPackageArn, pass: &Pass, endpoint: &str) -> String {
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
fn evidence(package: &ModelPackageArn, pass: &Pass) -> OutputVariables {
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
    format!("https://{region}.console.aws.amazon.com/sagemaker/home?region={region}#/model-cards/{}", crate::domain::card::card_name(package.group()))
}

/// How long a case may wait for its answer: its latency bound, within SageMaker's own limit.
fn case_bound(case: &TestCase) -> Duration {
    Duration::from_millis(case.max_latency_ms).min(INVOKE_CAP)
}

/// One case. An answer that does not come within the case's bound fails it; an invocation that
/// fails without an answer of the model (throttled, refused) is an error, not a result.
async fn run_case(endpoints: &dyn Endpoints, endpoint: &str, case: &TestCase, inference_id: &str) -> Result<CaseResult, DeployError> {
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
fn report_prefix(package: &ModelPackageArn) -> String {
    format!("reports/{}/{}/test-", package.group(), package.version())
}

fn report_uri(bucket: &str, package: &ModelPackageArn, job_id: &str) -> Result<S3Uri, DeployError> {
    let key = format!("{}{job_id}.json", report_prefix(package));
    S3Uri::new(bucket, &key).map_err(|e| DeployError::Aws(crate::ports::PortError::new("PutObject", crate::ports::FailureKind::Terminal, e.to_string())))
}

/// The report joins the card's evaluation details, in a new card version, unless it is there
/// already (the same job delivered again writes the same report).
async fn add_to_card(cards: &dyn ModelCards, package: &ModelPackageArn, report: &TestReport, uri: &S3Uri) -> Result<(), DeployError> {
    let name = crate::domain::card::card_name(package.group());
    let Some(card) = cards.describe(&name).await? else {
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

/// The output variables test-model publishes, with their longest values, as the pipeline
/// definition lists them for the template's approval (`infra/check_drift.py`): what the tests
/// hold the evidence to.
#[cfg(any(test, feature = "fakes"))]
pub fn published_variables() -> std::collections::BTreeMap<String, usize> {
    let definition: Value = serde_json::from_str(include_str!("../../../../infra/pipeline.json")).expect("pipeline.json");
    let stage = definition["stages"].as_array().expect("stages").iter().find(|s| s["action"] == "test-model").expect("a test-model stage");
    let variables = stage["variables"].as_object().expect("test-model's variables");
    variables.iter().map(|(name, v)| (name.clone(), usize::try_from(v["max_length"].as_u64().expect("max_length")).expect("a length"))).collect()
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;

    use super::*;
    use crate::deployment::testing::{deploy, job_event};
    use crate::fakes::DeployWorld;
    use crate::ports::{FailureKind, Notifier, PortError, PortResult};

    /// An approval topic that refuses its first message as throttled, then takes them.
    #[derive(Default)]
    struct ThrottledOnce {
        sent: std::sync::Mutex<Vec<String>>,
        refused: std::sync::atomic::AtomicBool,
    }

    #[async_trait]
    impl Notifier for ThrottledOnce {
        async fn notify(&self, _subject: &str, message: &str) -> PortResult<()> {
            if !self.refused.swap(true, std::sync::atomic::Ordering::SeqCst) {
                return Err(PortError::new("Publish", FailureKind::Retryable, "Throttling: Rate exceeded"));
            }
            self.sent.lock().unwrap().push(message.to_owned());
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_transient_failure_after_a_pass_finishes_recording_it_without_testing_again_nor_repeating_a_step() {
        let world = DeployWorld::new(0);
        assert!(matches!(deploy(&world, &world.package, Stage::Test).await, JobOutcome::Succeeded { .. }));
        let topic = Arc::new(ThrottledOnce::default());
        let ports = DeployPorts { approvers: topic.clone(), ..world.ports.clone() };
        let deadline = || Utc::now() + chrono::Duration::minutes(5);
        let cards = || world.cards.cards.lock().unwrap()["churn-prediction-111111111111"].len();

        let first = handle_test_job(&ports, &world.config, &job_event("tests-1", Stage::Test, &world.package, None), deadline()).await.unwrap();

        let JobOutcome::Continuing { continuation, summary } = first else { panic!("{first:?}") };
        assert!(summary.contains("the tests passed; will finish recording it") && summary.contains("Throttling"), "{summary}");
        assert_eq!((cards(), topic.sent.lock().unwrap().len()), (2, 0));
        // The next job must not test again: the endpoint now refuses every invocation.
        world.test.fault("InvokeEndpoint", crate::fakes::Fault::Fail(PortError::new("InvokeEndpoint", FailureKind::Terminal, "AccessDeniedException")));
        let second = handle_test_job(&ports, &world.config, &job_event("tests-2", Stage::Test, &world.package, Some(&continuation)), deadline()).await.unwrap();

        let JobOutcome::Succeeded { variables, .. } = second else { panic!("{second:?}") };
        assert_eq!(variables["ReportKey"], "reports/churn-prediction-111111111111/1/test-tests-1.json", "the report of the run that passed");
        assert_eq!(cards(), 2, "the card took the report once");
        let sent = topic.sent.lock().unwrap().clone();
        assert_eq!(sent.len(), 1, "the approvers are told once");
        assert!(sent[0].contains("test-tests-1.json"), "{}", sent[0]);
        assert_eq!(world.audit_actions().iter().filter(|a| *a == "tests-passed").count(), 1);
        assert_eq!(world.test.faults.lock().unwrap().len(), 1, "the endpoint was not invoked again");
    }

    #[tokio::test]
    async fn a_token_naming_another_versions_report_is_refused() {
        let world = DeployWorld::new(0);
        let report = "s3://model-promotion-artifacts-222222222222/reports/churn-prediction-111111111111/2/test-x.json".parse().unwrap();
        let pass = Pass { report, tested_by: "x".into(), passed: 2, total: 2, slowest_ms: 5 };
        let token = Progress { phase: Phase::Passed(pass), out_of_time: 1 }.token();

        let outcome = handle_test_job(
            &world.ports,
            &world.config,
            &job_event("tests-1", Stage::Test, &world.package, Some(&token)),
            Utc::now() + chrono::Duration::minutes(5),
        )
        .await
        .unwrap();

        assert!(matches!(outcome, JobOutcome::Failed { ref error_type, .. } if error_type == "Rejected.BadContinuation"), "{outcome:?}");
        assert!(world.approvers.sent.lock().unwrap().is_empty() && world.audit_actions().is_empty());
    }

    #[test]
    fn a_token_of_the_earlier_format_still_means_testing_again_and_a_pass_fits_a_token() {
        let progress: Progress = serde_json::from_str(r#"{"phase":"retest"}"#).unwrap();
        assert_eq!(progress, Progress { phase: Phase::Retest, out_of_time: 0 });

        let group: crate::domain::ids::GroupName = "g".repeat(63).parse().unwrap();
        let package = ModelPackageArn::new("ap-southeast-5", &"222222222222".parse().unwrap(), &group, u32::MAX);
        let report = report_uri(&"b".repeat(63), &package, "f41c2a9d-83b7-4e65-a0d2-5b6c7e8f9a10").unwrap();
        let pass = Pass { report, tested_by: "f41c2a9d-83b7-4e65-a0d2-5b6c7e8f9a10".into(), passed: usize::MAX, total: usize::MAX, slowest_ms: u64::MAX };
        let longest = Progress { phase: Phase::Passed(pass), out_of_time: u32::MAX };
        let token = longest.token();
        assert!(token.len() <= 2048, "CodePipeline takes continuation tokens of at most 2048 characters: {}", token.len());
        assert_eq!(serde_json::from_str::<Progress>(&token).unwrap(), longest);
    }

    #[test]
    fn the_evidence_is_what_the_pipeline_definition_publishes_and_fits_its_longest_values() {
        let group: crate::domain::ids::GroupName = "g".repeat(63).parse().unwrap();
        let package = ModelPackageArn::new("ap-southeast-5", &"222222222222".parse().unwrap(), &group, u32::MAX);
        let job_id = "f41c2a9d-83b7-4e65-a0d2-5b6c7e8f9a10";
        let uri = report_uri(&"b".repeat(63), &package, job_id).unwrap();
        let case = CaseResult { name: "c".into(), passed: true, status: Some(200), latency_ms: u64::MAX, failure: None };
        let report = TestReport {
            model_package_arn: package.to_string(),
            stage: "test".into(),
            endpoint: "e".into(),
            job_id: job_id.into(),
            tested_at: "2024-01-01T00:00:00Z".into(),
            passed: 10_000,
            failed: 0,
            cases: vec![case; 10_000],
        };

        let variables = evidence(&package, &Pass::of(&report, &uri));

        let limits = published_variables();
        assert_eq!(variables.keys().collect::<Vec<_>>(), limits.keys().collect::<Vec<_>>());
        for (name, value) in &variables {
            assert!(value.len() <= limits[name], "{name} is {} characters, more than {}: {value}", value.len(), limits[name]);
        }
        assert_eq!(variables["ReportKey"], format!("reports/{group}/{}/test-{job_id}.json", u32::MAX));
        assert!(variables["ModelCardUrl"].ends_with(&format!("#/model-cards/{group}")), "{}", variables["ModelCardUrl"]);
        assert_eq!(variables["TestSummary"], format!("10000/10000 test cases passed, slowest {} ms", u64::MAX));
    }
}
