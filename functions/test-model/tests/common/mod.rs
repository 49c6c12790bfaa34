//! What the test-model test binaries share: the reference job and a test endpoint as
//! deploy-model leaves it, over fakes.

use lambda_runtime::{Context, LambdaEvent};
use promotion_core::deployment::JobOutcome;
use promotion_core::domain::ids::{ModelPackageArn, Stage};
use promotion_core::domain::ledger::{DeploymentRecord, DeploymentState};
use promotion_core::fakes::{DeployWorld, Fault};
use promotion_core::ports::{FailureKind, PortError};
use serde_json::Value;

pub const ENDPOINT: &str = "promoted-churn-prediction-111111111111-test";
pub const CONFIG: &str = "promoted-churn-prediction-111111111111-v1-test";
pub const PREVIOUS: &str = "promoted-churn-prediction-111111111111-v0-test";
pub const JOB_ID: &str = "f41c2a9d-83b7-4e65-a0d2-5b6c7e8f9a10";

pub fn test_job() -> Value {
    let path = format!("{}/../../events/codepipeline-job-test-model.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The test endpoint as deploy-model leaves it: in service on this version's config, recorded
/// in the ledger with the config it replaced (`previous`), if any.
pub async fn deployed(previous: Option<&str>) -> DeployWorld {
    let world = DeployWorld::new(0);
    world.test.create_endpoint_for_test(ENDPOINT, CONFIG);
    let previous_package: Option<ModelPackageArn> =
        previous.map(|_| "arn:aws:sagemaker:us-east-1:222222222222:model-package/churn-prediction-111111111111/2".parse().unwrap());
    let record = DeploymentRecord {
        stage: Stage::Test,
        endpoint: ENDPOINT.into(),
        package: world.package.clone(),
        config: CONFIG.into(),
        state: DeploymentState::InService,
        previous_config: previous.map(str::to_owned),
        previous_package,
        at: chrono::Utc::now(),
    };
    world.ports.deployments.record_deployment(&record).await.unwrap();
    // DeployTest succeeded: CodePipeline runs TestModel.
    world.pipeline_at(&world.package, promotion_core::domain::pipeline::PipelineStage::TestModel);
    world
}

pub async fn invoke_with(world: &DeployWorld, event: Value, context: Context) -> JobOutcome {
    test_model::handler(&world.ports, &world.config, LambdaEvent::new(event, context)).await.expect("answered")
}

pub async fn invoke(world: &DeployWorld) -> JobOutcome {
    invoke_with(world, test_job(), Context::default()).await
}

pub fn throttled() -> Fault {
    Fault::Fail(PortError::new("InvokeEndpoint", FailureKind::Retryable, "ThrottlingException: Rate exceeded"))
}
