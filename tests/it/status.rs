//! `promote status` after real deployments on the emulator: the test and prod columns name the
//! version each endpoint serves, read from the endpoints themselves through the deploy roles.

use lambda_runtime::{Context, LambdaEvent};
use promote_cli::pipeline::{LocalCodePipeline, LocalPipeline, PipelineDefinition, PipelineWorld, Reached};
use promote_cli::status::{self, Live};
use promotion_aws::sagemaker::SageMakerRegistry;
use promotion_core::deployment::start::StartOutcome;
use promotion_core::deployment::{DeployConfig, DeployPorts};
use promotion_core::domain::event::ApprovalStatus;
use promotion_core::domain::ids::ModelPackageArn;
use promotion_core::ports::ModelRegistry;
use promotion_core::promotion::Outcome;
use promotion_tests::TestWorld;
use serde_json::{json, Value};

/// The deploy ports over the emulator, their CodePipeline client pointed at the local pipeline world.
fn deploy_context(world: &TestWorld, local: &LocalCodePipeline) -> (DeployPorts, DeployConfig) {
    let config = world.deploy_config();
    let mut ports = promotion_aws::wiring::deploy_ports(world.central(), &config);
    local.wire(&mut ports, world.central());
    (ports, config)
}

/// Promotes `dev`, approves its central version and runs the local pipeline with the test
/// endpoint answering `replies`, through the prod approval; returns the central version and
/// how the execution ended.
async fn through_the_pipeline(world: &TestWorld, dev: &ModelPackageArn, replies: &[&str], local: &LocalCodePipeline) -> (ModelPackageArn, Reached) {
    let Ok(Outcome::Promoted(summary)) = world.deliver(&world.decide(dev, true).await).await else { panic!("promotion failed") };
    let registry = SageMakerRegistry::new(world.sagemaker());
    let central = registry.describe_package(&summary.central_package).await.unwrap();
    registry.set_approval(&central, ApprovalStatus::Approved, "approved by the ML engineer", &[]).await.unwrap();
    let (ports, config) = deploy_context(world, local);
    let results: Vec<Value> = replies.iter().map(|body| json!({ "Body": body, "ContentType": "text/csv" })).collect();
    promote_cli::local::queue_endpoint_results(&world.world.endpoint, "333333333333", &results).await.unwrap();
    let mut context = Context::default();
    context.deadline = u64::try_from((chrono::Utc::now() + chrono::Duration::minutes(1)).timestamp_millis()).unwrap();
    let approval = promote_cli::local::approval_event(&summary.central_package, "Approved");
    let started = start_deployment::handler(&ports, &config, LambdaEvent::new(approval, context)).await.unwrap();
    let StartOutcome::Started { execution_id, .. } = started else { panic!("{started:?}") };
    let pipeline = LocalPipeline { ports: &ports, config: &config, world: &local.world };
    let mut ended = pipeline.resume(&execution_id).await.unwrap();
    if ended == Reached::WaitingForApproval {
        let mut screen = Vec::new();
        promote_cli::governance::decide_prod(&ports, &config, summary.central_package.group(), true, "risk review passed", &mut screen).await.unwrap();
        ended = pipeline.resume(&execution_id).await.unwrap();
    }
    (summary.central_package, ended)
}

#[tokio::test]
async fn status_names_the_version_each_endpoint_serves_after_real_deployments() {
    let world = TestWorld::new().await;
    let state = std::env::temp_dir().join(format!("status-pipeline-{}.json", uuid::Uuid::new_v4()));
    let definition = PipelineDefinition::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/pipeline.json")).unwrap();
    let local = LocalCodePipeline::serve(PipelineWorld::open(&state, definition)).await.unwrap();
    let (churn, ended) = through_the_pipeline(&world, &world.world.dev_package, &["0.83", "0.12"], &local).await;
    assert_eq!(ended, Reached::Succeeded);
    // The second model's tests fail: its new test endpoint is deleted, the version rejected.
    let (fraud, ended) = through_the_pipeline(&world, &world.world.second_dev_package, &["error: model not loaded", "error"], &local).await;
    assert_eq!(ended, Reached::Failed);
    std::fs::remove_file(&state).ok();

    let (ports, config) = deploy_context(&world, &local);
    let central = SageMakerRegistry::new(world.sagemaker());
    let live = Live {
        ledger: world.ledger.as_ref(),
        central: &central,
        sources: world.ports.sessions.as_ref(),
        stages: ports.stages.as_ref(),
        stage_config: &config.stages,
    };
    let models = status::models(&live).await.unwrap();
    let json = serde_json::to_value(&models).unwrap();

    let row = |central: &ModelPackageArn| json.as_array().unwrap().iter().find(|m| m["model"] == central.group().as_str()).cloned().expect("a row per model");
    let churn_row = row(&churn);
    assert_eq!((churn_row["dev"]["version"].clone(), churn_row["dev"]["approval"].clone()), (json!(world.world.dev_package.version()), json!("Approved")));
    assert_eq!((churn_row["central"]["version"].clone(), churn_row["central"]["approval"].clone()), (json!(1), json!("Approved")));
    for (stage, account) in [("test", "333333333333"), ("prod", "444444444444")] {
        let serving = &churn_row[stage];
        assert_eq!(serving["version"], 1, "{stage}: {serving}");
        assert_eq!(serving["package"], churn.to_string(), "{stage}: {serving}");
        assert_eq!(serving["status"], "InService", "{stage}: {serving}");
        assert_eq!(serving["endpoint"], format!("promoted-{}-{stage}", churn.group()), "{stage}: {serving}");
        assert_eq!(serving["account"], account);
        assert!(serving.get("error").is_none(), "{serving}");
    }
    let fraud_row = row(&fraud);
    assert_eq!(fraud_row["central"]["approval"], "Rejected", "{fraud_row}");
    assert_eq!((fraud_row["test"].clone(), fraud_row["prod"].clone()), (Value::Null, Value::Null), "no endpoint left: {fraud_row}");
    assert!(status::unreadable(&models).is_empty(), "{:?}", status::unreadable(&models));

    // The human form says the same in short names.
    let table = status::render_models(&models, false, chrono::Utc::now(), 120);
    let churn_line = table.lines().find(|l| l.starts_with(churn.group().as_str())).unwrap();
    let cells: Vec<&str> = churn_line.split_whitespace().collect();
    assert_eq!(&cells[2..6], ["v1", "Approved", "v1", "v1"], "{table}");
    let fraud_line = table.lines().find(|l| l.starts_with(fraud.group().as_str())).unwrap();
    assert_eq!(&fraud_line.split_whitespace().collect::<Vec<_>>()[2..6], ["v1", "Rejected", "-", "-"], "{table}");
}
