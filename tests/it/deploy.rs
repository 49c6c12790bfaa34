//! The staged deployment against moto's server: SageMaker hosting in the test and prod
//! accounts, the ledger, the card and the report bucket are real; CodePipeline's job and
//! approval calls, which the emulator lacks, are fakes.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use lambda_runtime::{Context, LambdaEvent};
use promote_cli::local::{put_object, register_version};
use promotion_tests::chaos::{Chaos, Fault};
use promotion_tests::TestWorld;
use serde_json::{json, Value};
use shared::adapters::sagemaker::SageMakerRegistry;
use shared::deployment::start::StartOutcome;
use shared::deployment::{DeployConfig, DeployPorts, JobOutcome};
use shared::domain::event::ApprovalStatus;
use shared::domain::ids::{ModelPackageArn, Stage};
use shared::domain::ledger::{DeploymentRecord, DeploymentState};
use shared::fakes::{stage_config_json, DeployWorld, FakeJobs, FakeRuns, JobAnswer};
use shared::ports::{Ledger, ModelRegistry};
use shared::promotion::Outcome;

struct Pipeline {
    world: Arc<TestWorld>,
    ports: DeployPorts,
    config: DeployConfig,
    jobs: Arc<FakeJobs>,
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
        let env = [
            ("CENTRAL_ACCOUNT_ID", "222222222222".to_owned()),
            ("STAGE_CONFIG", stage_config_json()),
            ("ARTIFACT_BUCKET", world.world.config.artifact_bucket.clone()),
            ("ARTIFACT_KMS_KEY_ID", world.world.config.kms_key_id.clone()),
            ("LEDGER_TABLE", world.world.config.ledger_table.clone()),
            ("PIPELINE_NAME", promote_cli::local::service_names().pipeline.clone()),
            ("APPROVAL_TOPIC_ARN", world.world.approval_topic_arn.clone()),
        ];
        let config = DeployConfig::from_lookup(|name| env.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone())).unwrap();
        let jobs = Arc::new(FakeJobs::default());
        let mut ports = shared::adapters::deploy_ports(world.central(), &config);
        ports.jobs = jobs.clone();
        ports.runs = Arc::new(FakeRuns::default());
        Self { world, ports, config, jobs, central: summary.central_package, test_job: format!("test-{}", uuid::Uuid::new_v4()) }
    }
}

fn job(id: &str, stage: Stage, package: &ModelPackageArn, continuation: Option<&str>) -> Value {
    let mut event: Value = serde_json::from_str(include_str!("../../events/codepipeline-job-deploy-test.json")).unwrap();
    let job = &mut event["CodePipeline.job"];
    job["id"] = id.into();
    job["data"]["actionConfiguration"]["configuration"]["UserParameters"] =
        json!({ "stage": stage, "model_package_arn": package }).to_string().into();
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
        let answer = loop {
            let event = LambdaEvent::new(job(&id, continuation.as_deref()), Context::default());
            if let Err(error) = deploy_model::handler(ports, config, event).await {
                assert!(error.is_retryable(), "{}: {error}", error.error_type());
                failed.push(error.error_type());
            }
            if let Some(answer) = jobs.answer(&id) {
                break answer;
            }
            assert!(failed.len() < 3, "job {id} still unanswered after {failed:?}");
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

    async fn deploy_with(&self, ports: &DeployPorts, stage: Stage) -> (JobAnswer, Vec<String>) {
        run_action(ports, &self.config, &self.jobs, |id, continuation| job(id, stage, &self.central, continuation)).await
    }

    /// Queues the endpoint's replies and runs the tests. moto keeps one reply queue per account,
    /// so tests that queue replies take turns.
    async fn test_with_replies(&self, bodies: &[&str]) -> JobOutcome {
        static REPLY_QUEUE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let _turn = REPLY_QUEUE.lock().await;
        self.queue_endpoint_replies("333333333333", bodies).await;
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
}

#[tokio::test]
async fn an_approved_version_goes_through_test_and_to_prod() {
    let pipeline = promoted_and_approved().await;
    let approval = promote_cli::local::approval_event(&pipeline.central, "Approved");
    let mut context = Context::default();
    context.deadline = u64::try_from((chrono::Utc::now() + chrono::Duration::minutes(1)).timestamp_millis()).unwrap();
    let started = start_deployment::handler(&pipeline.ports, &pipeline.config, LambdaEvent::new(approval, context)).await.unwrap();
    assert!(matches!(started, StartOutcome::Started { ref package, .. } if package == &pipeline.central), "{started:?}");

    let deployed = pipeline.deploy(Stage::Test).await;
    assert!(deployed.succeeded, "{deployed:?}");
    let group = pipeline.central.group().to_string();
    let test_endpoint = pipeline.account("333333333333").await.describe_endpoint().endpoint_name(format!("promoted-{group}-test")).send().await.unwrap();
    assert_eq!(test_endpoint.endpoint_config_name(), Some(format!("promoted-{group}-v1-test").as_str()));
    assert_eq!(test_endpoint.endpoint_status().map(|s| s.as_str()), Some("InService"));

    let tested = pipeline.test_with_replies(&["0.83", "0.12"]).await;
    assert!(matches!(tested, JobOutcome::Succeeded { ref summary } if summary.contains("2/2")), "{tested:?}");
    let report_key = format!("reports/{group}/1/test-{}.json", pipeline.test_job);
    let report: Value = serde_json::from_slice(&pipeline.world.object(&format!("s3://{}/{report_key}", pipeline.config.artifact_bucket).parse().unwrap()).await).unwrap();
    assert_eq!(report["passed"], 2);

    let inbox = pipeline.world.approval_requests().await;
    assert_eq!(inbox.len(), 1, "the governance officers are told once");
    assert!(inbox[0].contains(&report_key) && inbox[0].contains(&format!("#/model-cards/{group}")), "{}", inbox[0]);

    let to_prod = pipeline.deploy(Stage::Prod).await;
    assert!(to_prod.succeeded, "{to_prod:?}");
    let prod = pipeline.account("444444444444").await.describe_endpoint().endpoint_name(format!("promoted-{group}-prod")).send().await.unwrap();
    assert_eq!(prod.endpoint_config_name(), Some(format!("promoted-{group}-v1-prod").as_str()));
    let prod_config = pipeline.account("444444444444").await.describe_endpoint_config().endpoint_config_name(format!("promoted-{group}-v1-prod")).send().await.unwrap();
    let variant = &prod_config.production_variants()[0];
    assert_eq!((variant.instance_type().map(|t| t.as_str()), variant.initial_instance_count()), (Some("ml.m5.xlarge"), Some(2)));

    let record = pipeline.ports.ledger.deployment(Stage::Prod, &format!("promoted-{group}-prod")).await.unwrap().unwrap();
    assert_eq!((record.state, &record.package), (DeploymentState::InService, &pipeline.central));
    let trail: Vec<String> = pipeline.ports.ledger.history(&pipeline.central).await.unwrap().into_iter().map(|e| e.action).collect();
    for action in ["pipeline-started", "deploy-started", "deployed", "tests-passed"] {
        assert!(trail.contains(&action.to_owned()), "{action} missing from {trail:?}");
    }
    let cards = pipeline.world.card_versions(&group).await;
    assert_eq!(cards.last().unwrap().1["evaluation_details"].as_array().unwrap().len(), 2, "training metrics and the test report");
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
    let record = pipeline.ports.ledger.deployment(Stage::Test, &format!("promoted-{group}-test")).await.unwrap().unwrap();
    assert_eq!(record.state, DeploymentState::RolledBack);
    let last = pipeline.jobs.answers.lock().unwrap().last().cloned().unwrap();
    assert!(!last.succeeded && last.message.contains("report: s3://"));
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
        record.map(|r| (r.state, Self::relative(&r.config, group), r.previous_config.map(|c| Self::relative(&c, group)), r.previous_package.map(|p| p.version())))
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
        let endpoint = sagemaker.describe_endpoint().endpoint_name(format!("promoted-{group}-test")).send().await.ok().map(|e| {
            (e.endpoint_status().map(|s| s.as_str().to_owned()).unwrap_or_default(), relative(e.endpoint_config_name().unwrap_or_default()))
        });
        // moto's server ignores NameContains: the names are filtered here, over every page.
        let models: Vec<_> = sagemaker.list_models().into_paginator().items().send().collect().await;
        let mut models: Vec<String> =
            models.into_iter().map(|m| m.unwrap().model_name.unwrap_or_default()).filter(|n| n.contains(&group)).map(|n| relative(&n)).collect();
        models.sort();
        let configs: Vec<_> = sagemaker.list_endpoint_configs().into_paginator().items().send().collect().await;
        let mut endpoint_configs: Vec<String> =
            configs.into_iter().map(|c| c.unwrap().endpoint_config_name.unwrap_or_default()).filter(|n| n.contains(&group)).map(|n| relative(&n)).collect();
        endpoint_configs.sort();
        let record = self.ports.ledger.deployment(Stage::Test, &format!("promoted-{group}-test")).await.unwrap();
        let actions = self.ports.ledger.history(&self.central).await.unwrap().into_iter().map(|e| e.action).collect();
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

#[tokio::test]
async fn a_fault_at_every_call_of_a_first_deployment_heals_on_redelivery() {
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

/// Version 2 replacing version 1 in prod, blue/green, over the fakes: moto's server has no
/// UpdateEndpoint. Version 1 runs and the ledger knows it, as its own deployment left them.
async fn prod_runs_version_one() -> (DeployWorld, ModelPackageArn) {
    let world = DeployWorld::new(1);
    let first = world.package.clone();
    let second = ModelPackageArn::new("us-east-1", &"222222222222".parse().unwrap(), first.group(), 2);
    let mut package = world.central.packages.lock().unwrap()[first.as_str()].clone();
    package.arn = second.clone();
    world.central.add(package);
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
    let actions = world.ledger.audit.lock().unwrap().values().filter(|e| &e.source == second).map(|e| e.action.clone()).collect();
    let (trail, repeated) = Deployed::trail(actions);
    let state = Deployed { endpoint, models: relative_all(&world.prod.models), endpoint_configs: relative_all(&world.prod.configs), record: Deployed::record(record, &group), trail };
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
    assert_eq!(expected.record.clone().map(|(state, config, previous, version)| (state, config, (previous, version))), Some((DeploymentState::InService, "promoted-{group}-v2-prod".into(), rollback)));
    assert_eq!(expected.trail, ["deploy-started", "deployed"]);

    let report = fault_at_every_call(&calls, &expected, |chaos| async move {
        let (world, second) = prod_runs_version_one().await;
        deploy_version_two(&chaos.deploy_ports(&world.ports), &world, &second).await
    })
    .await;
    eprintln!("{}", report.join("\n"));
}
