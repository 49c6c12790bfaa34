//! The staged deployment against moto's server: SageMaker hosting in the test and prod
//! accounts, the ledger, the card and the report bucket are real; CodePipeline's job and
//! approval calls, which the emulator lacks, are fakes.

use std::sync::Arc;

use lambda_runtime::{Context, LambdaEvent};
use promotion_tests::TestWorld;
use serde_json::{json, Value};
use shared::adapters::sagemaker::SageMakerRegistry;
use shared::deployment::start::StartOutcome;
use shared::deployment::{DeployConfig, DeployPorts, JobOutcome};
use shared::domain::event::ApprovalStatus;
use shared::domain::ids::{ModelPackageArn, Stage};
use shared::domain::ledger::DeploymentState;
use shared::fakes::{stage_config_json, FakeJobs, FakeRuns};
use shared::ports::ModelRegistry;
use shared::promotion::Outcome;

struct Pipeline {
    world: TestWorld,
    ports: DeployPorts,
    config: DeployConfig,
    jobs: Arc<FakeJobs>,
    central: ModelPackageArn,
    /// Inference ids derive from the job id; moto keys its queued replies on them.
    test_job: String,
}

async fn promoted_and_approved() -> Pipeline {
    let world = TestWorld::new().await;
    let approval = world.decide(&world.world.dev_package, true).await;
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
    Pipeline { world, ports, config, jobs, central: summary.central_package, test_job: format!("test-{}", uuid::Uuid::new_v4()) }
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

impl Pipeline {
    async fn deploy(&self, stage: Stage) -> JobOutcome {
        let id = format!("deploy-{stage}-{}", uuid::Uuid::new_v4());
        let mut continuation = None;
        loop {
            let event = LambdaEvent::new(job(&id, stage, &self.central, continuation.as_deref()), Context::default());
            match deploy_model::handler(&self.ports, &self.config, event).await.unwrap() {
                JobOutcome::Continuing { continuation: token, .. } => continuation = Some(token),
                done => return done,
            }
        }
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
    assert!(matches!(deployed, JobOutcome::Succeeded { .. }), "{deployed:?}");
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
    assert!(matches!(to_prod, JobOutcome::Succeeded { .. }), "{to_prod:?}");
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
    assert!(matches!(pipeline.deploy(Stage::Test).await, JobOutcome::Succeeded { .. }));

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
