//! The local pipeline world over HTTP, through the functions' real CodePipeline adapter; the
//! accounts behind the handlers are the in-memory fakes, so these run without moto.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use promotion_aws::codepipeline::CodePipeline;
use promotion_core::deployment::DeployPorts;
use promotion_core::domain::deploy::OutputVariables;
use promotion_core::fakes::DeployWorld;
use promotion_core::ports::{ActionRunStatus, ApprovalResult, ExecutionStatus as Status, FailureKind, PipelineJobs, PipelineRuns};

use super::world::JobStatus;
use super::*;

const PIPELINE: &str = "model-promotion-deploy";

/// The world served on loopback, the adapter pointed at it, and the fake accounts.
struct Served {
    local: LocalCodePipeline,
    sdk: SdkConfig,
    adapter: Arc<CodePipeline>,
    accounts: DeployWorld,
    ports: DeployPorts,
    state: PathBuf,
}

impl Served {
    /// Deploy endpoints that settle after `polls` describes (deploy-model continues until then).
    async fn new(polls: usize) -> Self {
        let state = std::env::temp_dir().join(format!("pipeline-world-{}.json", uuid::Uuid::new_v4()));
        let definition = PipelineDefinition::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/pipeline.json")).unwrap();
        let world = PipelineWorld::open(&state, definition);
        // The governance officer's credentials call the world, as the CLI's STS identity does.
        world.called_by(promotion_core::fakes::GOVERNANCE_OFFICER);
        let local = LocalCodePipeline::serve(world).await.unwrap();
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .http_client(promotion_aws::wiring::https_client())
            .region(Region::new("us-east-1"))
            .credentials_provider(aws_sdk_codepipeline::config::Credentials::new("local", "local", None, None, "tests"))
            .load()
            .await;
        let adapter = Arc::new(CodePipeline::new(local.client(&sdk)));
        let accounts = DeployWorld::new(polls);
        let mut ports = accounts.ports.clone();
        local.wire(&mut ports, &sdk);
        Self { local, sdk, adapter, accounts, ports, state }
    }

    fn driver(&self) -> LocalPipeline<'_> {
        LocalPipeline { ports: &self.ports, config: &self.accounts.config, world: &self.local.world }
    }

    fn stage(&self, name: &str) -> PipelineStage {
        self.local.world.definition().stages.iter().find(|s| s.name == name).cloned().unwrap()
    }

    /// An execution started as start-deployment starts it, run up to the prod approval.
    async fn waiting_for_approval(&self) -> String {
        let execution = self.adapter.start(PIPELINE, &self.accounts.package, "approval-event-1").await.unwrap();
        assert_eq!(self.driver().resume(&execution).await.unwrap(), Reached::WaitingForApproval);
        execution
    }

    /// A job of `stage` in a new execution, as the driver hands it out.
    fn job_of(&self, stage: &str) -> (String, String, OpenedJob) {
        let world = &self.local.world;
        let execution = world.start(PIPELINE, BTreeMap::from([("ModelPackageArn".to_owned(), self.accounts.package.to_string())]), None).unwrap();
        let run = world.begin_action(&execution, &self.stage(stage)).unwrap().unwrap();
        let job = world.open_job(&execution, &run).unwrap().unwrap();
        (execution, run, job)
    }

    fn prod_endpoint(&self) -> Option<promotion_core::fakes::FakeEndpoint> {
        self.accounts.prod.endpoint(&format!("promoted-{}-prod", self.accounts.package.group()))
    }

    fn parameters(&self, stage: &str, execution: &str) -> String {
        format!(r#"{{"stage":"{stage}","model_package_arn":"{}","execution_id":"{execution}"}}"#, self.accounts.package)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        std::fs::remove_file(&self.state).ok();
    }
}

fn refused_with(error: &promotion_core::ports::PortError, code: &str) -> bool {
    error.message.contains(code)
}

#[tokio::test]
async fn a_job_answered_twice_is_refused_the_second_time_and_keeps_its_first_answer() {
    let served = Served::new(0).await;
    let (execution, run, job) = served.job_of("DeployTest");

    served.adapter.succeed(&job.id, None, "deployed churn v1 to test").await.unwrap();
    let again = served.adapter.fail(&job.id, "a late failure").await.unwrap_err();
    let variables = OutputVariables::from([("ReportKey".to_owned(), "reports/x.json".to_owned())]);
    let third = served.adapter.succeed_with_variables(&job.id, "again", &variables).await.unwrap_err();

    for error in [&again, &third] {
        assert_eq!(error.kind, FailureKind::Conflict, "{error}");
        assert!(refused_with(error, "InvalidJobStateException"), "{error}");
    }
    let answered = served.local.world.job(&job.id).unwrap();
    let first = JobAnswer::Succeeded { continuation: None, summary: Some("deployed churn v1 to test".into()), variables: BTreeMap::new() };
    assert_eq!((answered.status, answered.answer), (JobStatus::Succeeded, Some(first)));
    let run = served.local.world.action_run(&execution, &run).unwrap();
    assert_eq!((run.status, run.summary.as_deref(), run.output_variables.len()), (ActionStatus::Succeeded, Some("deployed churn v1 to test"), 0));
}

#[tokio::test]
async fn an_unknown_or_malformed_job_and_variables_beside_a_continuation_are_refused_and_change_nothing() {
    let served = Served::new(0).await;
    let (_, run, job) = served.job_of("TestModel");
    let before = std::fs::read(&served.state).unwrap();
    let client = served.local.client(&served.sdk);

    let unknown = served.adapter.succeed(&uuid::Uuid::new_v4().to_string(), None, "deployed").await.unwrap_err();
    let malformed = served.adapter.fail("job-1", "endpoint failed").await.unwrap_err();
    let both = client
        .put_job_success_result()
        .job_id(&job.id)
        .continuation_token("{\"phase\":\"wait\"}")
        .output_variables("ReportKey", "reports/x.json")
        .send()
        .await
        .unwrap_err();

    assert!(refused_with(&unknown, "JobNotFoundException") && unknown.kind == FailureKind::Terminal, "{unknown}");
    assert!(refused_with(&malformed, "ValidationException") && malformed.kind == FailureKind::Terminal, "{malformed}");
    let both = promotion_aws::classify("PutJobSuccessResult", &both);
    assert!(refused_with(&both, "ValidationException") && both.message.contains("no continuation token"), "{both}");
    assert_eq!(std::fs::read(&served.state).unwrap(), before, "the world is unchanged");
    assert_eq!(served.local.world.job(&job.id).unwrap().answer, None);
    assert_eq!(served.local.world.action_run(&served.local.world.job(&job.id).unwrap().execution_id, &run).unwrap().status, ActionStatus::InProgress);
}

#[tokio::test]
async fn action_runs_report_the_resolved_parameters_and_statuses_one_run_per_action_however_many_jobs() {
    // DeployTest's endpoint settles after two describes: its action takes more than one job.
    let served = Served::new(2).await;

    let execution = served.waiting_for_approval().await;

    let runs = served.adapter.action_runs(PIPELINE, &execution).await.unwrap();
    let seen: Vec<_> = runs.iter().map(|r| (r.stage.as_str(), r.status, r.user_parameters.clone())).collect();
    assert_eq!(
        seen,
        [
            ("ApproveProd", ActionRunStatus::InProgress, None),
            ("TestModel", ActionRunStatus::Succeeded, Some(served.parameters("test", &execution))),
            ("DeployTest", ActionRunStatus::Succeeded, Some(served.parameters("test", &execution))),
        ]
    );
    assert!(runs.iter().all(|r| r.last_update.is_some()), "{runs:?}");
    assert!(runs[1].summary.as_deref().unwrap_or_default().contains("test cases passed"), "{runs:?}");
    let jobs_of_deploy_test = {
        let raw = std::fs::read(&served.state).unwrap();
        let state: Value = serde_json::from_slice(&raw).unwrap();
        let run_id = state["executions"][&execution]["runs"][0]["id"].clone();
        state["jobs"].as_object().unwrap().values().filter(|job| job["run_id"] == run_id).count()
    };
    assert!(jobs_of_deploy_test > 1, "continuations are jobs of one run: {jobs_of_deploy_test}");
    // The raw API: the configuration as declared, TestModel's output variables, pages of one.
    let client = served.local.client(&served.sdk);
    let filter = aws_sdk_codepipeline::types::ActionExecutionFilter::builder().pipeline_execution_id(&execution).build();
    let pages: Vec<_> = client.list_action_executions().pipeline_name(PIPELINE).filter(filter).max_results(1).into_paginator().send().collect().await;
    let details: Vec<_> = pages.into_iter().flat_map(|page| page.unwrap().action_execution_details.unwrap_or_default()).collect();
    assert_eq!(details.iter().filter_map(|d| d.stage_name()).collect::<Vec<_>>(), ["ApproveProd", "TestModel", "DeployTest"]);
    let test_model = &details[1];
    let declared = test_model.input().and_then(|i| i.configuration()).and_then(|c| c.get("UserParameters")).unwrap();
    assert!(declared.contains("#{variables.ModelPackageArn}") && declared.contains("#{codepipeline.PipelineExecutionId}"), "{declared}");
    let outputs = test_model.output().and_then(|o| o.output_variables()).unwrap();
    assert!(outputs["ReportKey"].starts_with("reports/churn-prediction-111111111111/1/test-"), "{outputs:?}");
    let pending = served.adapter.pending_approval(PIPELINE, "ApproveProd", "ApproveProd").await.unwrap().unwrap();
    assert_eq!(pending.execution_id.as_deref(), Some(execution.as_str()));
    let view = served.adapter.execution(PIPELINE, &execution).await.unwrap().unwrap();
    assert_eq!((view.status, view.package), (Status::InProgress, Some(served.accounts.package.clone())));
}

#[tokio::test]
async fn an_approval_answered_through_the_adapter_lets_the_driver_go_on_to_prod_once() {
    let served = Served::new(0).await;
    let execution = served.waiting_for_approval().await;
    assert!(served.prod_endpoint().is_none());
    let pending = served.adapter.pending_approval(PIPELINE, "ApproveProd", "ApproveProd").await.unwrap().unwrap();

    let mut screen = Vec::new();
    crate::governance::decide_prod(&served.ports, &served.accounts.config, served.accounts.package.group(), true, "risk review passed", &mut screen)
        .await
        .unwrap();
    let reached = served.driver().resume(&execution).await.unwrap();

    assert_eq!(reached, Reached::Succeeded);
    assert!(served.prod_endpoint().is_some(), "the driver went on to DeployProd");
    assert_eq!(served.adapter.execution(PIPELINE, &execution).await.unwrap().unwrap().status, Status::Succeeded);
    let answer = served.adapter.approval_result(PIPELINE, &execution, "ApproveProd").await.unwrap();
    let by = promotion_core::fakes::GOVERNANCE_OFFICER.to_owned();
    assert_eq!(answer, Some(ApprovalResult { approved: true, by: Some(by), comment: Some("risk review passed".into()) }));
    let twice = served.adapter.answer_approval(PIPELINE, "ApproveProd", "ApproveProd", &pending.token, false, "changed my mind").await.unwrap_err();
    assert!(refused_with(&twice, "ApprovalAlreadyCompletedException"), "{twice}");
    assert_eq!(served.adapter.pending_approval(PIPELINE, "ApproveProd", "ApproveProd").await.unwrap(), None);
    assert!(served.accounts.audit_actions().contains(&"prod-approved".to_owned()), "{:?}", served.accounts.audit_actions());
}

#[tokio::test]
async fn a_rejection_through_the_adapter_fails_the_execution_and_nothing_reaches_prod() {
    let served = Served::new(0).await;
    let execution = served.waiting_for_approval().await;

    let mut screen = Vec::new();
    crate::governance::decide_prod(&served.ports, &served.accounts.config, served.accounts.package.group(), false, "drift too high", &mut screen)
        .await
        .unwrap();
    let reached = served.driver().resume(&execution).await.unwrap();

    assert_eq!(reached, Reached::Failed);
    assert!(served.prod_endpoint().is_none());
    assert_eq!(served.adapter.execution(PIPELINE, &execution).await.unwrap().unwrap().status, Status::Failed);
    let runs = served.adapter.action_runs(PIPELINE, &execution).await.unwrap();
    assert_eq!(runs.iter().map(|r| (r.stage.as_str(), r.status)).collect::<Vec<_>>()[0], ("ApproveProd", ActionRunStatus::Failed));
    assert_eq!(runs[0].summary.as_deref(), Some("drift too high"));
    assert!(!runs.iter().any(|r| r.stage == "DeployProd"), "{runs:?}");
    assert_eq!(served.driver().resume(&execution).await.unwrap(), Reached::Failed, "a failed execution runs nothing more");
}

#[tokio::test]
async fn a_stopped_execution_runs_nothing_more_and_its_approval_token_opens_nothing() {
    let served = Served::new(0).await;
    let execution = served.waiting_for_approval().await;
    let pending = served.adapter.pending_approval(PIPELINE, "ApproveProd", "ApproveProd").await.unwrap().unwrap();

    served.adapter.stop(PIPELINE, &execution, "the version was revoked in dev").await.unwrap();
    let reached = served.driver().resume(&execution).await.unwrap();
    // Stopped already: CodePipeline says it is not stoppable, the adapter that it is stopped.
    served.adapter.stop(PIPELINE, &execution, "again").await.unwrap();
    let late = served.adapter.answer_approval(PIPELINE, "ApproveProd", "ApproveProd", &pending.token, true, "approved").await.unwrap_err();

    assert_eq!(reached, Reached::Stopped);
    assert!(refused_with(&late, "InvalidApprovalTokenException"), "{late}");
    assert_eq!(served.driver().resume(&execution).await.unwrap(), Reached::Stopped);
    assert!(served.prod_endpoint().is_none());
    assert_eq!(served.adapter.execution(PIPELINE, &execution).await.unwrap().unwrap().status, Status::Stopped);
    assert_eq!(served.adapter.pending_approval(PIPELINE, "ApproveProd", "ApproveProd").await.unwrap(), None);
    let runs = served.adapter.action_runs(PIPELINE, &execution).await.unwrap();
    assert_eq!((runs.len(), runs[0].stage.as_str(), runs[0].status), (3, "ApproveProd", ActionRunStatus::Abandoned));
}

#[tokio::test]
async fn an_execution_stopped_before_it_ran_deploys_nothing() {
    let served = Served::new(0).await;
    let execution = served.adapter.start(PIPELINE, &served.accounts.package, "approval-event-2").await.unwrap();

    served.adapter.stop(PIPELINE, &execution, "superseded").await.unwrap();
    let reached = served.driver().resume(&execution).await.unwrap();

    assert_eq!(reached, Reached::Stopped);
    assert_eq!(served.adapter.action_runs(PIPELINE, &execution).await.unwrap(), []);
    assert!(served.accounts.test.calls.lock().unwrap().is_empty(), "nothing was asked of the test account");
    let state: Value = serde_json::from_slice(&std::fs::read(&served.state).unwrap()).unwrap();
    assert_eq!(state["jobs"], json!({}), "no job was handed out");
}

#[tokio::test]
async fn a_repeated_start_is_one_execution_and_an_unknown_execution_or_pipeline_is_refused() {
    let served = Served::new(0).await;

    let first = served.adapter.start(PIPELINE, &served.accounts.package, "event-1").await.unwrap();
    let again = served.adapter.start(PIPELINE, &served.accounts.package, "event-1").await.unwrap();
    let unknown = served.adapter.execution(PIPELINE, &uuid::Uuid::new_v4().to_string()).await.unwrap();
    let other = served.adapter.start("another-pipeline", &served.accounts.package, "event-2").await.unwrap_err();
    let listed = served.adapter.action_runs(PIPELINE, &uuid::Uuid::new_v4().to_string()).await.unwrap_err();

    assert_eq!(first, again);
    assert_eq!(unknown, None);
    assert!(refused_with(&other, "PipelineNotFoundException"), "{other}");
    assert!(refused_with(&listed, "PipelineExecutionNotFoundException") && listed.kind == FailureKind::NotFound, "{listed}");
    assert_eq!(served.adapter.execution(PIPELINE, &first).await.unwrap().unwrap().package, Some(served.accounts.package.clone()));
}

#[tokio::test]
async fn a_stop_without_abandoning_lets_the_waiting_approval_finish_and_then_runs_nothing_more() {
    let served = Served::new(0).await;
    let execution = served.waiting_for_approval().await;
    let client = served.local.client(&served.sdk);

    client.stop_pipeline_execution().pipeline_name(PIPELINE).pipeline_execution_id(&execution).reason("hold").send().await.unwrap();
    let again = client.stop_pipeline_execution().pipeline_name(PIPELINE).pipeline_execution_id(&execution).send().await.unwrap_err();
    let still_waiting = served.driver().resume(&execution).await.unwrap();
    let stopping = served.adapter.execution(PIPELINE, &execution).await.unwrap().unwrap().status;
    let mut screen = Vec::new();
    crate::governance::decide_prod(&served.ports, &served.accounts.config, served.accounts.package.group(), true, "fine", &mut screen).await.unwrap();
    let reached = served.driver().resume(&execution).await.unwrap();

    assert!(refused_with(&promotion_aws::classify("StopPipelineExecution", &again), "DuplicatedStopRequestException"));
    assert_eq!((still_waiting, stopping), (Reached::WaitingForApproval, Status::Stopping));
    assert_eq!(reached, Reached::Stopped);
    assert_eq!(served.adapter.execution(PIPELINE, &execution).await.unwrap().unwrap().status, Status::Stopped);
    assert!(served.prod_endpoint().is_none(), "DeployProd never started");
    let runs = served.adapter.action_runs(PIPELINE, &execution).await.unwrap();
    assert_eq!((runs[0].stage.as_str(), runs[0].status), ("ApproveProd", ActionRunStatus::Succeeded));
}

/// CodePipeline's job calls, refused as throttled: the function cannot answer its job.
struct Unanswerable {
    tries: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl PipelineJobs for Unanswerable {
    async fn succeed(&self, _job_id: &str, _continuation: Option<&str>, _summary: &str) -> promotion_core::ports::PortResult<()> {
        self.refuse()
    }
    async fn succeed_with_variables(&self, _job_id: &str, _summary: &str, _variables: &OutputVariables) -> promotion_core::ports::PortResult<()> {
        self.refuse()
    }
    async fn fail(&self, _job_id: &str, _message: &str) -> promotion_core::ports::PortResult<()> {
        self.refuse()
    }
}

impl Unanswerable {
    fn refuse(&self) -> promotion_core::ports::PortResult<()> {
        self.tries.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Err(promotion_core::ports::PortError::new("PutJobSuccessResult", FailureKind::Retryable, "ThrottlingException: Rate exceeded"))
    }
}

#[tokio::test]
async fn a_job_the_function_cannot_answer_is_retried_as_lambda_does_then_times_out_and_fails_the_execution() {
    let mut served = Served::new(0).await;
    let jobs = Arc::new(Unanswerable { tries: Default::default() });
    served.ports.jobs = jobs.clone();
    let execution = served.adapter.start(PIPELINE, &served.accounts.package, "approval-event-3").await.unwrap();

    let reached = served.driver().resume(&execution).await.unwrap();

    assert_eq!(reached, Reached::Failed);
    assert_eq!(jobs.tries.load(std::sync::atomic::Ordering::SeqCst), LAMBDA_ATTEMPTS, "one answer tried per invocation");
    let runs = served.adapter.action_runs(PIPELINE, &execution).await.unwrap();
    assert_eq!((runs.len(), runs[0].stage.as_str(), runs[0].status), (1, "DeployTest", ActionRunStatus::Failed));
    let why = runs[0].summary.clone().unwrap_or_default();
    assert!(why.contains("timed out") && why.contains("Retryable") && why.contains("Rate exceeded"), "{why}");
    let state: Value = serde_json::from_slice(&std::fs::read(&served.state).unwrap()).unwrap();
    let statuses: Vec<&Value> = state["jobs"].as_object().unwrap().values().map(|job| &job["status"]).collect();
    assert_eq!(statuses, [&json!("TimedOut")], "one job, invoked three times");
    assert_eq!(served.adapter.execution(PIPELINE, &execution).await.unwrap().unwrap().status, Status::Failed);
}
