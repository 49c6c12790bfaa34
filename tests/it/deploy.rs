//! The staged deployment against moto's server: SageMaker hosting in the test and prod
//! accounts, the ledger, the card and the report bucket are real; CodePipeline's job and
//! approval calls, which the emulator lacks, are fakes or the local pipeline driver.

use promotion_core::failure::Failure;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use lambda_runtime::{Context, LambdaEvent};
use promote_cli::local::{put_object, register_version};
use promote_cli::pipeline::{LocalCodePipeline, LocalPipeline, PipelineDefinition, PipelineWorld, Reached};
use promotion_aws::sagemaker::SageMakerRegistry;
use promotion_core::deployment::start::StartOutcome;
use promotion_core::deployment::{DeployConfig, DeployPorts, JobOutcome};
use promotion_core::domain::event::ApprovalStatus;
use promotion_core::domain::ids::{ModelPackageArn, Stage};
use promotion_core::domain::ledger::{DeploymentRecord, DeploymentState};
use promotion_core::domain::pipeline::PipelineStage;
use promotion_core::fakes::{job_parameters, world_execution, DeployWorld, FakeJobs, FakeRuns, JobAnswer};
use promotion_core::ports::{
    ActionRun, ActionRunStatus, ApprovalResult, DeploymentRecords, ExecutionView, ModelRegistry, PendingApproval, PipelineRuns, PortResult,
};
use promotion_core::promotion::Outcome;
use promotion_tests::chaos::{Chaos, Fault};
use promotion_tests::TestWorld;
use serde_json::{json, Value};

/// moto keeps one queue of endpoint replies per account: tests that queue replies and run the
/// tests take turns.
static REPLY_QUEUE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Pipeline {
    world: Arc<TestWorld>,
    ports: DeployPorts,
    config: DeployConfig,
    jobs: Arc<FakeJobs>,
    runs: Arc<FakeRuns>,
    central: ModelPackageArn,
    /// Inference ids derive from the job id; moto keys its queued replies on them.
    test_job: String,
}

async fn promoted_and_approved() -> Pipeline {
    let world = Arc::new(TestWorld::new().await);
    let dev_package = world.world.dev_package.clone();
    Pipeline::over(world, &dev_package).await
}

impl Pipeline {
    /// Promotes `dev_package` and approves its central version, as the ML engineer does.
    async fn over(world: Arc<TestWorld>, dev_package: &ModelPackageArn) -> Self {
        let approval = world.decide(dev_package, true).await;
        let Ok(Outcome::Promoted(summary)) = world.deliver(&approval).await else { panic!("promotion failed") };
        let registry = SageMakerRegistry::new(world.sagemaker());
        let central = registry.describe_package(&summary.central_package).await.unwrap();
        registry.set_approval(&central, ApprovalStatus::Approved, "approved by the ML engineer", &[]).await.unwrap();
        let config = world.deploy_config();
        let (jobs, runs) = (Arc::new(FakeJobs::default()), Arc::new(FakeRuns::default()));
        let mut ports = promotion_aws::wiring::deploy_ports(world.central(), &config);
        ports.jobs = jobs.clone();
        ports.runs = runs.clone();
        Self { world, ports, config, jobs, runs, central: summary.central_package, test_job: format!("test-{}", uuid::Uuid::new_v4()) }
    }
}

fn job(id: &str, stage: Stage, package: &ModelPackageArn, continuation: Option<&str>) -> Value {
    let mut event: Value = serde_json::from_str(include_str!("../../events/codepipeline-job-deploy-test.json")).unwrap();
    let job = &mut event["CodePipeline.job"];
    job["id"] = id.into();
    job["data"]["actionConfiguration"]["configuration"]["UserParameters"] = job_parameters(stage, package, &world_execution(package)).into();
    if let Some(token) = continuation {
        job["data"]["continuationToken"] = token.into();
    }
    event
}

/// Runs a deploy action as CodePipeline does: every invocation is a job of its own, the next
/// one carrying the continuation token of the answer the last one got; a job left unanswered
/// by a failed invocation is delivered again, as Lambda retries an asynchronous invocation.
/// Returns the last answer and the error types of the failed invocations.
async fn run_action(ports: &DeployPorts, config: &DeployConfig, jobs: &FakeJobs, job: impl Fn(&str, Option<&str>) -> Value) -> (JobAnswer, Vec<String>) {
    let mut continuation = None;
    let mut failed = Vec::new();
    for _ in 0..40 {
        let id = format!("job-{}", uuid::Uuid::new_v4());
        // Lambda invokes a job's action at most three times (two retries) before giving up on it.
        let mut invocations = 0;
        let answer = loop {
            let event = LambdaEvent::new(job(&id, continuation.as_deref()), Context::default());
            invocations += 1;
            if let Err(error) = deploy_model::handler(ports, config, event).await {
                assert!(error.is_retryable(), "{}: {error}", error.error_type());
                failed.push(error.error_type());
            }
            if let Some(answer) = jobs.answer(&id) {
                break answer;
            }
            assert!(invocations < 3, "job {id} still unanswered after three invocations: {failed:?}");
        };
        match &answer.continuation {
            Some(token) if answer.succeeded => continuation = Some(token.clone()),
            _ => return (answer, failed),
        }
    }
    panic!("the deployment did not finish in 40 jobs")
}

impl Pipeline {
    async fn deploy(&self, stage: Stage) -> JobAnswer {
        let (answer, failed_deliveries) = self.deploy_with(&self.ports, stage).await;
        assert!(failed_deliveries.is_empty(), "{failed_deliveries:?}");
        answer
    }

    /// CodePipeline (the fake one these tests drive) runs the version's execution at `stage`.
    fn at(&self, stage: PipelineStage) {
        self.runs.run_at(&world_execution(&self.central), &self.central, stage);
    }

    async fn deploy_with(&self, ports: &DeployPorts, stage: Stage) -> (JobAnswer, Vec<String>) {
        self.at(if stage == Stage::Prod { PipelineStage::DeployProd } else { PipelineStage::DeployTest });
        run_action(ports, &self.config, &self.jobs, |id, continuation| job(id, stage, &self.central, continuation)).await
    }

    /// Queues the endpoint's replies and runs the tests.
    async fn test_with_replies(&self, bodies: &[&str]) -> JobOutcome {
        let _turn = REPLY_QUEUE.lock().await;
        self.queue_endpoint_replies("333333333333", bodies).await;
        self.at(PipelineStage::TestModel);
        let event = LambdaEvent::new(job(&self.test_job, Stage::Test, &self.central, None), Context::default());
        test_model::handler(&self.ports, &self.config, event).await.unwrap()
    }

    async fn account(&self, account: &str) -> aws_sdk_sagemaker::Client {
        aws_sdk_sagemaker::Client::new(&promote_cli::local::session_in(self.world.central(), account).await.unwrap())
    }

    async fn queue_endpoint_replies(&self, account: &str, bodies: &[&str]) {
        let results: Vec<Value> = bodies.iter().map(|b| json!({ "Body": b, "ContentType": "text/csv" })).collect();
        promote_cli::local::queue_endpoint_results(&self.world.world.endpoint, account, &results).await.unwrap();
    }

    /// A delivery of `approval`, the central approval of the version, to start-deployment.
    async fn start(&self, ports: &DeployPorts, approval: &Value) -> Result<StartOutcome, promotion_core::deployment::StartError> {
        let approval = approval.clone();
        let mut context = Context::default();
        context.deadline = u64::try_from((chrono::Utc::now() + chrono::Duration::minutes(1)).timestamp_millis()).unwrap();
        start_deployment::handler(ports, &self.config, LambdaEvent::new(approval, context)).await
    }

    /// A CodePipeline state-change event of `events/`, for this pipeline's execution.
    async fn outcome(&self, fixture: &str, execution_id: &str) -> promotion_core::deployment::record::Recorded {
        let mut event: Value = serde_json::from_str(&std::fs::read_to_string(format!("{}/../events/{fixture}", env!("CARGO_MANIFEST_DIR"))).unwrap()).unwrap();
        event["detail"]["pipeline"] = self.config.pipeline.clone().into();
        event["detail"]["execution-id"] = execution_id.into();
        record_outcome::handler(&self.ports, &self.config, LambdaEvent::new(event, Context::default())).await.unwrap()
    }

    async fn card_status(&self) -> String {
        let card = self.world.sagemaker().describe_model_card().model_card_name(promotion_core::domain::card::card_name(&self.central)).send().await.unwrap();
        card.model_card_status().map(|s| s.as_str().to_owned()).unwrap_or_default()
    }

    /// The version's audit trail in the ledger, oldest first.
    async fn trail(&self) -> Vec<promotion_core::domain::audit::AuditEntry> {
        self.ports.audit.history(&self.central).await.unwrap()
    }
}

fn actions(trail: &[promotion_core::domain::audit::AuditEntry]) -> Vec<String> {
    trail.iter().map(|e| e.action.to_string()).collect()
}

#[tokio::test]
async fn an_approved_version_goes_through_test_and_the_governance_approval_to_prod() {
    let pipeline = promoted_and_approved().await;
    let started = pipeline.start(&pipeline.ports, &promote_cli::local::approval_event(&pipeline.central, "Approved")).await.unwrap();
    let StartOutcome::Started { ref package, ref execution_id } = started else { panic!("{started:?}") };
    assert_eq!(package, &pipeline.central);

    let deployed = pipeline.deploy(Stage::Test).await;
    assert!(deployed.succeeded, "{deployed:?}");
    let group = pipeline.central.group().to_string();
    let test_endpoint = pipeline.account("333333333333").await.describe_endpoint().endpoint_name(format!("promoted-{group}-test")).send().await.unwrap();
    assert_eq!(test_endpoint.endpoint_config_name(), Some(format!("promoted-{group}-v1-test").as_str()));
    assert_eq!(test_endpoint.endpoint_status().map(|s| s.as_str()), Some("InService"));

    let tested = pipeline.test_with_replies(&["0.83", "0.12"]).await;
    let JobOutcome::Succeeded { summary, variables } = &tested else { panic!("{tested:?}") };
    assert!(summary.contains("2/2"), "{summary}");
    let report_key = format!("reports/{group}/1/test-{}-attempt-1.json", pipeline.test_job);
    assert_eq!(variables["ReportKey"], report_key, "the prod approval links this report");
    let bytes = pipeline.world.object(&format!("s3://{}/{report_key}", pipeline.config.evidence_bucket).parse().unwrap()).await;
    let report: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(report["passed"], 2);
    assert_eq!(variables["ReportSha256"], promotion_core::domain::naming::hex_sha256(&bytes), "the approval shows the digest of the stored bytes");

    let inbox = pipeline.world.approval_requests().await;
    assert_eq!(inbox.len(), 1, "the governance officers are told once");
    assert!(inbox[0].contains(&report_key) && inbox[0].contains(&format!("#/model-cards/{group}")), "{}", inbox[0]);

    // The pipeline waits at ApproveProd; the governance officer answers as `promote approve` does.
    assert_eq!(execution_id, &world_execution(&pipeline.central), "the fake pipeline's first execution");
    pipeline.at(PipelineStage::ApproveProd);
    *pipeline.runs.pending.lock().unwrap() = Some(PendingApproval { token: "approval-token".into(), execution_id: Some(execution_id.clone()) });
    pipeline.outcome("codepipeline-approval-started.json", execution_id).await;
    assert_eq!(pipeline.card_status().await, "PendingReview");
    let mut screen = Vec::new();
    promote_cli::governance::decide_prod(&pipeline.ports, &pipeline.config, pipeline.central.group(), true, "risk review passed", &mut screen).await.unwrap();
    let screen = String::from_utf8(screen).unwrap();
    assert!(screen.starts_with(&format!("tests of {} (execution {execution_id}): tests-passed", pipeline.central)) && screen.contains(&report_key), "{screen}");
    assert_eq!(pipeline.runs.answers.lock().unwrap().as_slice(), [("approval-token".to_owned(), true, "risk review passed".to_owned())]);
    // What CodePipeline's ListActionExecutions reports afterwards (moto has no approvals).
    let officer = "arn:aws:sts::222222222222:assumed-role/Governance/alice";
    pipeline.runs.decide_approval(execution_id, true, Some(officer), Some("risk review passed"));
    pipeline.outcome("codepipeline-approval-succeeded.json", execution_id).await;

    let to_prod = pipeline.deploy(Stage::Prod).await;
    assert!(to_prod.succeeded, "{to_prod:?}");
    let prod = pipeline.account("444444444444").await.describe_endpoint().endpoint_name(format!("promoted-{group}-prod")).send().await.unwrap();
    assert_eq!(prod.endpoint_config_name(), Some(format!("promoted-{group}-v1-prod").as_str()));
    let prod_config =
        pipeline.account("444444444444").await.describe_endpoint_config().endpoint_config_name(format!("promoted-{group}-v1-prod")).send().await.unwrap();
    let variant = &prod_config.production_variants()[0];
    assert_eq!((variant.instance_type().map(|t| t.as_str()), variant.initial_instance_count()), (Some("ml.m5.xlarge"), Some(2)));

    pipeline.runs.report(execution_id, "DeployProd", "DeployProd", ActionRunStatus::Succeeded, None);
    pipeline.outcome("codepipeline-deploy-prod-succeeded.json", execution_id).await;

    let record = pipeline.ports.deployments.deployment(Stage::Prod, &format!("promoted-{group}-prod")).await.unwrap().unwrap();
    assert_eq!((record.state, &record.package), (DeploymentState::InService, &pipeline.central));
    let trail = pipeline.trail().await;
    let done = actions(&trail);
    for action in ["pipeline-started", "deploy-started", "deployed", "tests-passed", "awaiting-approval", "prod-approved", "prod-deployed"] {
        assert!(done.contains(&action.to_owned()), "{action} missing from {done:?}");
    }
    let approval = trail.iter().find(|e| e.action == "prod-approved").unwrap();
    assert_eq!(approval.detail["execution_id"], json!(execution_id));
    assert_eq!((approval.detail["detail"]["by"].as_str(), approval.detail["detail"]["comment"].as_str()), (Some(officer), Some("risk review passed")));
    assert_eq!(pipeline.card_status().await, "Approved");
    let cards = pipeline.world.group_card_versions(&group).await;
    let last = &cards.last().unwrap().1;
    assert_eq!(last["evaluation_details"].as_array().unwrap().len(), 2, "training metrics and the test report");
    assert_eq!(last["additional_information"]["custom_details"]["governance_decision"], "approved");
    assert!(pipeline.jobs.answers.lock().unwrap().iter().all(|a| a.succeeded));
}

#[tokio::test]
async fn a_failed_test_removes_the_new_endpoint_and_rejects_the_version() {
    let pipeline = promoted_and_approved().await;
    assert!(pipeline.deploy(Stage::Test).await.succeeded);

    let tested = pipeline.test_with_replies(&["error: model not loaded", "error: model not loaded"]).await;

    let JobOutcome::Failed { error_type, message } = tested else { panic!("{tested:?}") };
    assert_eq!(error_type, "Rejected.TestsFailed");
    assert!(message.contains("scores a typical customer: response lacks \"0.\""), "{message}");
    let group = pipeline.central.group().to_string();
    let gone = pipeline.account("333333333333").await.describe_endpoint().endpoint_name(format!("promoted-{group}-test")).send().await;
    assert!(gone.is_err(), "a first deployment that fails its tests leaves no endpoint");
    let central = pipeline.world.sagemaker().describe_model_package().model_package_name(pipeline.central.as_str()).send().await.unwrap();
    assert_eq!(central.model_approval_status().map(|s| s.as_str()), Some("Rejected"));
    assert!(central.approval_description().unwrap().contains("failed tests"));
    assert_eq!(central.customer_metadata_properties().unwrap()["promotion:source-arn"], pipeline.world.world.dev_package.to_string());
    let record = pipeline.ports.deployments.deployment(Stage::Test, &format!("promoted-{group}-test")).await.unwrap().unwrap();
    assert_eq!(record.state, DeploymentState::RolledBack);
    let last = pipeline.jobs.answers.lock().unwrap().last().cloned().unwrap();
    assert!(!last.succeeded && last.message.contains("report: s3://"));
}

/// Counts the executions started: moto ignores `clientRequestToken`, so every
/// StartPipelineExecution that reached it would be an execution of its own.
struct CountingRuns {
    inner: Arc<FakeRuns>,
    starts: AtomicUsize,
}

#[async_trait::async_trait]
impl PipelineRuns for CountingRuns {
    async fn start(&self, pipeline: &str, package: &ModelPackageArn, token: &str) -> PortResult<String> {
        self.starts.fetch_add(1, Ordering::SeqCst);
        self.inner.start(pipeline, package, token).await
    }
    async fn execution(&self, pipeline: &str, execution_id: &str) -> PortResult<Option<ExecutionView>> {
        self.inner.execution(pipeline, execution_id).await
    }
    async fn action_runs(&self, pipeline: &str, execution_id: &str) -> PortResult<Vec<ActionRun>> {
        self.inner.action_runs(pipeline, execution_id).await
    }
    async fn stop(&self, pipeline: &str, execution_id: &str, reason: &str) -> PortResult<()> {
        self.inner.stop(pipeline, execution_id, reason).await
    }
    async fn pending_approval(&self, pipeline: &str, stage: &str, action: &str) -> PortResult<Option<PendingApproval>> {
        self.inner.pending_approval(pipeline, stage, action).await
    }
    async fn answer_approval(&self, pipeline: &str, stage: &str, action: &str, token: &str, approve: bool, summary: &str) -> PortResult<()> {
        self.inner.answer_approval(pipeline, stage, action, token, approve, summary).await
    }
    async fn approval_result(&self, pipeline: &str, execution_id: &str, action: &str) -> PortResult<Option<ApprovalResult>> {
        self.inner.approval_result(pipeline, execution_id, action).await
    }
}

#[tokio::test]
async fn a_central_approval_delivered_twice_and_five_times_at_once_starts_one_execution() {
    let pipeline = promoted_and_approved().await;
    let counting = Arc::new(CountingRuns { inner: pipeline.runs.clone(), starts: AtomicUsize::new(0) });
    let mut ports = pipeline.ports.clone();
    ports.runs = counting.clone();
    let approval = promote_cli::local::approval_event(&pipeline.central, "Approved");
    let (ports, pipeline, approval) = (&ports, &pipeline, &approval);
    // EventBridge retries a delivery that failed: one turned away while another holds the claim.
    let deliver = move || async move {
        for _ in 0..50 {
            match pipeline.start(ports, approval).await {
                Ok(outcome) => return outcome,
                Err(error) => {
                    assert_eq!(error.error_type(), "Retryable.StartInProgress", "{error}")
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the approval was never started")
    };

    // Five deliveries race for the claim on a fresh event, then the event comes twice more.
    let mut outcomes = futures::future::join_all((0..5).map(|_| deliver())).await;
    outcomes.extend([deliver().await, deliver().await]);

    // moto applies a conditional write without isolation from a concurrent one, so under this
    // race two deliveries can both win the start claim (DynamoDB's conditional PutItem cannot);
    // seen once in a loaded run. What holds either way: every delivery names one execution (a
    // second start carries the same clientRequestToken, which CodePipeline, and the fake,
    // answer with the first execution), and the ledger keeps one start and one audit entry.
    let execution_of = |o: &StartOutcome| match o {
        StartOutcome::Started { execution_id, .. } | StartOutcome::AlreadyStarted { execution_id, .. } => Some(execution_id.clone()),
        _ => None,
    };
    let executions: std::collections::BTreeSet<Option<String>> = outcomes.iter().map(execution_of).collect();
    let [Some(execution_id)] = executions.iter().collect::<Vec<_>>()[..] else { panic!("not one execution: {outcomes:?}") };
    let started = outcomes.iter().filter(|o| matches!(o, StartOutcome::Started { .. })).count();
    assert!((1..=2).contains(&started), "{outcomes:?}");
    assert_eq!(counting.starts.load(Ordering::SeqCst), started, "one StartPipelineExecution per claim won");
    assert!(outcomes[5..].iter().all(|o| matches!(o, StartOutcome::AlreadyStarted { .. })), "the later deliveries find it started: {outcomes:?}");
    let event_id = approval["id"].as_str().unwrap();
    let starts: Vec<_> = pipeline.world.ledger_items().await.into_iter().filter(|item| item["pk"].contains("START#")).collect();
    assert_eq!(starts.len(), 1, "{starts:?}");
    assert!(starts[0]["pk"].contains(event_id) && starts[0]["execution_id"].contains(execution_id.as_str()), "{starts:?}");
    assert_eq!(actions(&pipeline.trail().await), ["pipeline-started"]);
}

#[tokio::test]
async fn the_ledger_keeps_one_audit_entry_per_event_and_action_in_time_order() {
    let world = TestWorld::new().await;
    let package: ModelPackageArn = "arn:aws:sagemaker:us-east-1:222222222222:model-package/audit-111111111111/1".parse().unwrap();
    let t0 = chrono::Utc::now();
    let entry = |event_id: &str, action: &str, seconds: i64, detail: Value| promotion_core::domain::audit::AuditEntry {
        source: package.clone(),
        at: t0 + chrono::Duration::seconds(seconds),
        event_id: event_id.into(),
        action: action.into(),
        detail,
    };
    let ledger = world.ports.audit.clone();
    ledger.append(&entry("job-2", "deployed", 3, json!({}))).await.unwrap();
    ledger.append(&entry("job-1", "deploy-started", 2, json!({ "delivery": 1 }))).await.unwrap();
    // The same job delivered again, later.
    ledger.append(&entry("job-1", "deploy-started", 5, json!({ "delivery": 2 }))).await.unwrap();
    ledger.append(&entry("event-0", "pipeline-started", 0, json!({}))).await.unwrap();

    let trail = ledger.history(&package).await.unwrap();

    assert_eq!(actions(&trail), ["pipeline-started", "deploy-started", "deployed"]);
    assert_eq!(trail[1].detail, json!({ "delivery": 1 }), "the first write stays");
}

/// The local pipeline driver over moto, as `promote local pipeline` runs it: the functions talk to
/// the local pipeline world over HTTP through the real CodePipeline adapter.
struct LocalRun {
    pipeline: Pipeline,
    ports: DeployPorts,
    local: LocalCodePipeline,
    state: std::path::PathBuf,
}

impl LocalRun {
    async fn over(world: Arc<TestWorld>, dev_package: &ModelPackageArn) -> Self {
        let pipeline = Pipeline::over(world, dev_package).await;
        let state = std::env::temp_dir().join(format!("local-pipeline-{}.json", uuid::Uuid::new_v4()));
        let definition = PipelineDefinition::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/pipeline.json")).unwrap();
        let local = LocalCodePipeline::serve(PipelineWorld::open(&state, definition)).await.unwrap();
        let mut ports = pipeline.ports.clone();
        local.wire(&mut ports, pipeline.world.central());
        Self { pipeline, ports, local, state }
    }

    fn driver(&self) -> LocalPipeline<'_> {
        LocalPipeline { ports: &self.ports, config: &self.pipeline.config, world: &self.local.world }
    }

    /// What CodePipeline lists of the pipeline's action runs: `(stage, status, output variables)`, newest first.
    async fn listed_runs(&self) -> Vec<(String, String, HashMap<String, String>)> {
        let client = self.local.client(self.pipeline.world.central());
        let listed = client.list_action_executions().pipeline_name(&self.pipeline.config.pipeline).send().await.unwrap();
        listed
            .action_execution_details()
            .iter()
            .map(|d| {
                let outputs = d.output().and_then(|o| o.output_variables()).cloned().unwrap_or_default();
                (d.stage_name().unwrap_or_default().to_owned(), d.status().map(|s| s.as_str().to_owned()).unwrap_or_default(), outputs)
            })
            .collect()
    }

    /// The central approval starts the pipeline, which runs with these endpoint replies until it
    /// stops: at the approval, or at the end.
    async fn run_with_replies(&self, bodies: &[&str]) -> (String, Reached) {
        let _turn = REPLY_QUEUE.lock().await;
        self.pipeline.queue_endpoint_replies("333333333333", bodies).await;
        let approval = promote_cli::local::approval_event(&self.pipeline.central, "Approved");
        let started = self.pipeline.start(&self.ports, &approval).await.unwrap();
        let StartOutcome::Started { execution_id, .. } = started else { panic!("{started:?}") };
        let status = self.driver().resume(&execution_id).await.unwrap();
        (execution_id, status)
    }

    async fn endpoint(&self, account: &str, stage: &str) -> Option<(String, String)> {
        let name = format!("promoted-{}-{stage}", self.pipeline.central.group());
        let found = self.pipeline.account(account).await.describe_endpoint().endpoint_name(name).send().await.ok()?;
        Some((found.endpoint_status().unwrap().as_str().to_owned(), found.endpoint_config_name().unwrap().to_owned()))
    }

    async fn central_status(&self) -> (String, String) {
        let central = self.pipeline.world.sagemaker().describe_model_package().model_package_name(self.pipeline.central.as_str()).send().await.unwrap();
        (central.model_approval_status().unwrap().as_str().to_owned(), central.approval_description().unwrap_or_default().to_owned())
    }
}

impl Drop for LocalRun {
    fn drop(&mut self) {
        std::fs::remove_file(&self.state).ok();
    }
}

#[tokio::test]
async fn the_local_pipeline_stops_at_the_prod_approval_and_goes_to_prod_once_approved() {
    let world = Arc::new(TestWorld::new().await);
    let dev_package = world.world.dev_package.clone();
    let local = LocalRun::over(world, &dev_package).await;
    let group = local.pipeline.central.group().to_string();

    let (execution_id, status) = local.run_with_replies(&["0.83", "0.12"]).await;

    assert_eq!(status, Reached::WaitingForApproval);
    let runs = local.listed_runs().await;
    let stages: Vec<(&str, &str)> = runs.iter().map(|(stage, status, _)| (stage.as_str(), status.as_str())).collect();
    assert_eq!(stages, [("ApproveProd", "InProgress"), ("TestModel", "Succeeded"), ("DeployTest", "Succeeded")]);
    let evidence = &runs[1].2;
    assert!(evidence["ReportKey"].starts_with(&format!("reports/{group}/1/test-")), "the approval's link: {evidence:?}");
    assert!(evidence["ModelCardUrl"].ends_with(&format!("#/model-cards/{group}-v1")), "{evidence:?}");
    assert!(evidence["TestSummary"].starts_with("2/2 test cases passed"), "{evidence:?}");
    assert_eq!(local.endpoint("333333333333", "test").await, Some(("InService".into(), format!("promoted-{group}-v1-test"))));
    assert_eq!(local.endpoint("444444444444", "prod").await, None, "nothing reaches prod before the approval");
    let waiting = actions(&local.pipeline.trail().await);
    for action in ["pipeline-started", "deployed", "tests-passed", "DeployTest.DeployTest-succeeded", "TestModel.TestModel-succeeded", "awaiting-approval"] {
        assert!(waiting.contains(&action.to_owned()), "{action} missing from {waiting:?}");
    }
    assert!(!waiting.iter().any(|a| a.starts_with("prod-")), "{waiting:?}");
    assert_eq!(local.pipeline.card_status().await, "PendingReview");

    let mut screen = Vec::new();
    promote_cli::governance::decide_prod(&local.ports, &local.pipeline.config, local.pipeline.central.group(), true, "risk review passed", &mut screen)
        .await
        .unwrap();
    let status = local.driver().resume(&execution_id).await.unwrap();

    assert_eq!(status, Reached::Succeeded);
    assert!(String::from_utf8(screen).unwrap().starts_with(&format!("tests of {} (execution {execution_id}): tests-passed", local.pipeline.central)));
    assert_eq!(local.endpoint("444444444444", "prod").await, Some(("InService".into(), format!("promoted-{group}-v1-prod"))));
    let record = local.ports.deployments.deployment(Stage::Prod, &format!("promoted-{group}-prod")).await.unwrap().unwrap();
    assert_eq!((record.state, &record.package), (DeploymentState::InService, &local.pipeline.central));
    let trail = local.pipeline.trail().await;
    let approval = trail.iter().find(|e| e.action == "prod-approved").expect("the approval is recorded");
    let operator = std::env::var("USER").unwrap_or_else(|_| "local operator".into());
    assert_eq!(
        (approval.detail["detail"]["by"].as_str(), approval.detail["detail"]["comment"].as_str()),
        (Some(operator.as_str()), Some("risk review passed"))
    );
    let done = actions(&trail);
    for action in ["prod-deployed", "pipeline-succeeded"] {
        assert!(done.contains(&action.to_owned()), "{action} missing from {done:?}");
    }
    assert_eq!(local.pipeline.card_status().await, "Approved");
    assert_eq!(local.central_status().await.0, "Approved");
}

#[tokio::test]
async fn the_local_pipeline_stops_when_the_tests_fail_and_leaves_no_test_endpoint() {
    let world = Arc::new(TestWorld::new().await);
    let second = world.world.second_dev_package.clone();
    let local = LocalRun::over(world, &second).await;
    let group = local.pipeline.central.group().to_string();

    let (_, status) = local.run_with_replies(&["error: model not loaded", "error: model not loaded"]).await;

    assert_eq!(status, Reached::Failed);
    assert_eq!(local.endpoint("333333333333", "test").await, None, "a first deployment that fails its tests is removed");
    assert_eq!(local.endpoint("444444444444", "prod").await, None);
    let (approval, reason) = local.central_status().await;
    assert_eq!(approval, "Rejected");
    assert!(reason.contains("failed tests") && reason.contains("scores a typical customer"), "{reason}");
    let record = local.ports.deployments.deployment(Stage::Test, &format!("promoted-{group}-test")).await.unwrap().unwrap();
    assert_eq!(record.state, DeploymentState::RolledBack);
    let trail = actions(&local.pipeline.trail().await);
    for action in ["tests-failed", "rejected-by-tests", "rolled-back", "TestModel.TestModel-failed", "pipeline-failed"] {
        assert!(trail.contains(&action.to_owned()), "{action} missing from {trail:?}");
    }
    assert!(!trail.contains(&"awaiting-approval".to_owned()), "the pipeline stops before the approval: {trail:?}");
}

// ---------------------------------------------------------------------------------------------
// An injected fault at every call of a deployment

/// What a deployment leaves, with the model group's name taken out so that deployments into
/// different groups compare.
#[derive(Debug, Clone, PartialEq)]
struct Deployed {
    /// Status and config.
    endpoint: Option<(String, String)>,
    models: Vec<String>,
    endpoint_configs: Vec<String>,
    /// State, config, rollback config and rollback version of the ledger's record.
    record: Option<(DeploymentState, String, Option<String>, Option<u32>)>,
    /// The deployment entries of the audit trail, each once.
    trail: Vec<String>,
}

impl Deployed {
    fn relative(name: &str, group: &str) -> String {
        name.replace(group, "{group}")
    }

    fn record(record: Option<DeploymentRecord>, group: &str) -> Option<(DeploymentState, String, Option<String>, Option<u32>)> {
        record
            .map(|r| (r.state, Self::relative(&r.config, group), r.previous_config.map(|c| Self::relative(&c, group)), r.previous_package.map(|p| p.version())))
    }

    /// The distinct deployment actions of a trail, and how many were written more than once.
    fn trail(actions: Vec<String>) -> (Vec<String>, usize) {
        let mut trail: Vec<String> = actions.into_iter().filter(|a| a.starts_with("deploy")).collect();
        let written = trail.len();
        trail.sort();
        trail.dedup();
        let repeated = written - trail.len();
        (trail, repeated)
    }
}

impl Pipeline {
    /// The test stage as a first deployment leaves it, on the emulator.
    async fn deployed_to_test(&self) -> (Deployed, usize) {
        let group = self.central.group().to_string();
        let relative = |name: &str| Deployed::relative(name, &group);
        let sagemaker = self.account("333333333333").await;
        let endpoint = sagemaker
            .describe_endpoint()
            .endpoint_name(format!("promoted-{group}-test"))
            .send()
            .await
            .ok()
            .map(|e| (e.endpoint_status().map(|s| s.as_str().to_owned()).unwrap_or_default(), relative(e.endpoint_config_name().unwrap_or_default())));
        // moto's server ignores NameContains: the names are filtered here, over every page.
        let models: Vec<_> = sagemaker.list_models().into_paginator().items().send().collect().await;
        let mut models: Vec<String> =
            models.into_iter().map(|m| m.unwrap().model_name.unwrap_or_default()).filter(|n| n.contains(&group)).map(|n| relative(&n)).collect();
        models.sort();
        let configs: Vec<_> = sagemaker.list_endpoint_configs().into_paginator().items().send().collect().await;
        let mut endpoint_configs: Vec<String> =
            configs.into_iter().map(|c| c.unwrap().endpoint_config_name.unwrap_or_default()).filter(|n| n.contains(&group)).map(|n| relative(&n)).collect();
        endpoint_configs.sort();
        let record = self.ports.deployments.deployment(Stage::Test, &format!("promoted-{group}-test")).await.unwrap();
        let actions = self.ports.audit.history(&self.central).await.unwrap().into_iter().map(|e| e.action.to_string()).collect();
        let (trail, repeated) = Deployed::trail(actions);
        (Deployed { endpoint, models, endpoint_configs, record: Deployed::record(record, &group), trail }, repeated)
    }
}

/// A new model's first version, promoted and approved, ready for its first deployment.
async fn first_version_ready(world: &Arc<TestWorld>, model: &str, label: &str) -> Pipeline {
    let group = format!("{label}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let version = register_version(world.dev(), &group, model, None).await.expect("register the dev version");
    Pipeline::over(world.clone(), &version).await
}

/// Fails each call of the fault-free run in turn, each way, and checks that every scenario
/// ends where the fault-free run did. Returns one line per scenario.
async fn fault_at_every_call<S, F>(calls: &[&'static str], expected: &Deployed, scenario: S) -> Vec<String>
where
    S: Fn(Arc<Chaos>) -> F,
    F: std::future::Future<Output = (JobAnswer, Vec<String>, Deployed, usize)>,
{
    let positions = [Fault::Refused, Fault::AnswerLost].into_iter().flat_map(|fault| (0..calls.len()).map(move |position| (fault, position)));
    futures::stream::iter(positions)
        .map(|(fault, position)| {
            let scenario = &scenario;
            async move {
                let chaos = Chaos::failing([position], fault);
                let (answer, failed, state, repeated) = scenario(chaos.clone()).await;
                let what = format!("{fault:?} at call {position} ({})", calls[position]);
                assert_eq!(chaos.injected(), vec![(position, calls[position])], "{what}: the fault hits the same call as in the fault-free run");
                assert!(answer.succeeded, "{what}: the job failed: {answer:?}");
                assert_eq!(&state, expected, "{what}: the end state differs from the fault-free run");
                format!("{what}: {} invocations redelivered, {repeated} audit entries repeated", failed.len())
            }
        })
        .buffer_unordered(4)
        .collect()
        .await
}

/// A model in the dev bucket, the calls of its fault-free first deployment and what it leaves.
async fn reference_first_deployment() -> (Arc<TestWorld>, String, Vec<&'static str>, Deployed) {
    let world = Arc::new(TestWorld::new().await);
    let archive = promote_cli::local::model_archive(1).unwrap();
    let model = put_object(world.dev(), &world.world.names.dev_bucket, "faults/model.tar.gz", archive).await.unwrap();

    let reference = first_version_ready(&world, &model, "reference").await;
    let counter = Chaos::counting();
    let (answer, failed) = reference.deploy_with(&counter.deploy_ports(&reference.ports), Stage::Test).await;
    assert!(answer.succeeded && failed.is_empty(), "{answer:?} {failed:?}");
    let calls = counter.calls();
    assert!(calls.contains(&"CreateEndpoint") && calls.contains(&"PutJobSuccessResult"), "{calls:?}");
    let (expected, repeated) = reference.deployed_to_test().await;
    assert_eq!(repeated, 0);
    let config = "promoted-{group}-v1-test".to_owned();
    assert_eq!(expected.endpoint, Some(("InService".into(), config.clone())));
    assert_eq!((expected.models.clone(), expected.endpoint_configs.clone()), (vec![config.clone()], vec![config.clone()]));
    assert_eq!(expected.record, Some((DeploymentState::InService, config, None, None)));
    assert_eq!(expected.trail, ["deploy-started", "deployed"]);
    (world, model, calls, expected)
}

#[tokio::test]
async fn a_fault_at_every_call_of_a_first_deployment_heals_on_redelivery() {
    let (world, model, calls, expected) = reference_first_deployment().await;

    let report = fault_at_every_call(&calls, &expected, |chaos| {
        let (world, model) = (&world, &model);
        async move {
            let pipeline = first_version_ready(world, model, "fault").await;
            let (answer, failed) = pipeline.deploy_with(&chaos.deploy_ports(&pipeline.ports), Stage::Test).await;
            let (state, repeated) = pipeline.deployed_to_test().await;
            (answer, failed, state, repeated)
        }
    })
    .await;
    eprintln!("{}", report.join("\n"));
}

/// Throttling and lost answers over a whole first deployment, not one call: every third call
/// refused, then every third answer lost, across as many jobs as the deployment takes.
#[tokio::test]
async fn a_throttling_storm_over_a_first_deployment_still_ends_where_the_fault_free_run_does() {
    let (world, model, calls, expected) = reference_first_deployment().await;
    for (fault, positions) in [(Fault::Refused, (1..3 * calls.len()).step_by(3)), (Fault::AnswerLost, (2..3 * calls.len()).step_by(3))] {
        let chaos = Chaos::failing(positions, fault);
        let pipeline = first_version_ready(&world, &model, "storm").await;

        let (answer, failed) = pipeline.deploy_with(&chaos.deploy_ports(&pipeline.ports), Stage::Test).await;

        assert!(answer.succeeded, "{fault:?} storm: the job failed: {answer:?}");
        assert!(chaos.injected().len() >= 3, "{fault:?} storm: only {:?} injected", chaos.injected());
        let (state, repeated) = pipeline.deployed_to_test().await;
        assert_eq!(state, expected, "{fault:?} storm: the end state differs from the fault-free run");
        eprintln!("{fault:?} storm: {} faults injected, {} invocations failed, {repeated} audit entries repeated", chaos.injected().len(), failed.len());
    }
}

/// Version 2 replacing version 1 in prod, blue/green, over the fakes: moto's server has no
/// UpdateEndpoint. Version 1 runs and the ledger knows it, as its own deployment left them.
async fn prod_runs_version_one() -> (DeployWorld, ModelPackageArn) {
    let world = DeployWorld::new(1);
    let first = world.package.clone();
    let second = ModelPackageArn::new("us-east-1", &"222222222222".parse().unwrap(), first.group(), 2);
    let mut package = world.central.packages.lock().unwrap()[first.as_str()].clone();
    package.arn = second.clone();
    world.central.add(package);
    world.promoted(&"arn:aws:sagemaker:us-east-1:111111111111:model-package/churn-prediction/4".parse().unwrap(), &second);
    world.pipeline_at(&second, PipelineStage::DeployProd);
    let endpoint = format!("promoted-{}-prod", first.group());
    let running = format!("promoted-{}-v1-prod", first.group());
    world.prod.create_endpoint_for_test(&endpoint, &running);
    let record = DeploymentRecord {
        stage: Stage::Prod,
        endpoint,
        package: first,
        config: running,
        state: DeploymentState::InService,
        previous_config: None,
        previous_package: None,
        at: chrono::Utc::now(),
    };
    world.ledger.record_deployment(&record).await.unwrap();
    (world, second)
}

async fn deploy_version_two(ports: &DeployPorts, world: &DeployWorld, second: &ModelPackageArn) -> (JobAnswer, Vec<String>, Deployed, usize) {
    let (answer, failed) = run_action(ports, &world.config, &world.jobs, |id, continuation| job(id, Stage::Prod, second, continuation)).await;
    let group = second.group().to_string();
    let endpoint_name = format!("promoted-{group}-prod");
    let endpoint = world.prod.endpoint(&endpoint_name).map(|e| (format!("{:?}", e.status), Deployed::relative(&e.config, &group)));
    let relative_all = |names: &Mutex<Vec<String>>| {
        let mut names: Vec<String> = names.lock().unwrap().iter().map(|n| Deployed::relative(n, &group)).collect();
        names.sort();
        names.dedup();
        names
    };
    let record = world.ledger.deployment(Stage::Prod, &endpoint_name).await.unwrap();
    let actions = world.ledger.audit.lock().unwrap().values().filter(|e| &e.source == second).map(|e| e.action.to_string()).collect();
    let (trail, repeated) = Deployed::trail(actions);
    let state = Deployed {
        endpoint,
        models: relative_all(&world.prod.models),
        endpoint_configs: relative_all(&world.prod.configs),
        record: Deployed::record(record, &group),
        trail,
    };
    (answer, failed, state, repeated)
}

#[tokio::test]
async fn a_fault_at_every_call_of_a_blue_green_update_keeps_the_rollback_target() {
    let (world, second) = prod_runs_version_one().await;
    let counter = Chaos::counting();
    let (answer, failed, expected, repeated) = deploy_version_two(&counter.deploy_ports(&world.ports), &world, &second).await;
    assert!(answer.succeeded && failed.is_empty() && repeated == 0, "{answer:?} {failed:?}");
    let calls = counter.calls();
    assert!(calls.contains(&"UpdateEndpoint"), "{calls:?}");
    assert_eq!(expected.endpoint, Some(("InService".into(), "promoted-{group}-v2-prod".into())));
    let rollback = (Some("promoted-{group}-v1-prod".to_owned()), Some(1));
    assert_eq!(
        expected.record.clone().map(|(state, config, previous, version)| (state, config, (previous, version))),
        Some((DeploymentState::InService, "promoted-{group}-v2-prod".into(), rollback))
    );
    assert_eq!(expected.trail, ["deploy-started", "deployed"]);

    let report = fault_at_every_call(&calls, &expected, |chaos| async move {
        let (world, second) = prod_runs_version_one().await;
        deploy_version_two(&chaos.deploy_ports(&world.ports), &world, &second).await
    })
    .await;
    eprintln!("{}", report.join("\n"));
}
