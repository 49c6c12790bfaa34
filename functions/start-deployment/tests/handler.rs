//! start-deployment over fakes: exactly this version, once per approval event.

use lambda_runtime::{Context, LambdaEvent};
use promotion_core::deployment::start::StartOutcome;
use promotion_core::domain::ledger::PromotionState;
use promotion_core::failure::Failure;
use promotion_core::fakes::{DeployWorld, DEPLOY_WORLD_SOURCE};
use promotion_core::ports::StartClaims;
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The world with no pipeline execution yet: the central approval is what starts one.
fn before_any_execution() -> DeployWorld {
    let world = DeployWorld::new(0);
    world.runs.executions.lock().unwrap().clear();
    world.runs.action_runs.lock().unwrap().clear();
    world
}

async fn invoke(world: &DeployWorld, event: Value) -> Result<StartOutcome, promotion_core::deployment::StartError> {
    let mut context = Context::default();
    context.deadline = u64::try_from((chrono::Utc::now() + chrono::Duration::minutes(1)).timestamp_millis()).unwrap();
    start_deployment::handler(&world.ports, &world.config, LambdaEvent::new(event, context)).await
}

#[tokio::test]
async fn a_central_approval_starts_one_execution_for_exactly_that_version_however_often_delivered() {
    let world = before_any_execution();
    let event = fixture("sagemaker-central-approval.json");

    let first = invoke(&world, event.clone()).await.unwrap();
    let again = invoke(&world, event).await.unwrap();

    let StartOutcome::Started { execution_id, package } = first else { panic!("{first:?}") };
    assert_eq!(package, world.package);
    assert_eq!(again, StartOutcome::AlreadyStarted { package: world.package.clone(), execution_id: execution_id.clone() });
    let executions = world.runs.executions.lock().unwrap().clone();
    assert_eq!(executions.len(), 1);
    assert_eq!(executions[&execution_id].0, world.package, "the pipeline variable is the exact version");
    assert_eq!(world.ledger.executions_of(&world.package).await.unwrap(), [execution_id], "the ledger lists the version's execution once");
    assert_eq!(world.audit_actions(), ["pipeline-started"]);
}

#[tokio::test]
async fn a_version_never_promoted_or_revoked_is_refused() {
    let world = before_any_execution();
    let mut foreign = fixture("sagemaker-central-approval.json");
    let other = "arn:aws:sagemaker:us-east-1:222222222222:model-package/hand-made/1";
    foreign["detail"]["ModelPackageArn"] = other.into();
    foreign["detail"]["ModelPackageGroupName"] = "hand-made".into();
    world.central.add(promotion_core::domain::package::RegisteredPackage {
        arn: other.parse().unwrap(),
        description: None,
        status: Some(promotion_core::domain::event::ApprovalStatus::Approved),
        inference: Default::default(),
        artifacts: vec![],
        customer_metadata: Default::default(),
    });
    assert_eq!(invoke(&world, foreign).await.unwrap_err().error_type(), "Rejected.NotPromoted");

    world.ledger.records.lock().unwrap().get_mut(DEPLOY_WORLD_SOURCE).unwrap().state = PromotionState::Revoked;
    assert_eq!(invoke(&world, fixture("sagemaker-central-approval.json")).await.unwrap_err().error_type(), "Rejected.VersionRevoked");
    assert!(world.runs.executions.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_approval_from_a_dev_account_is_not_the_central_one() {
    let world = DeployWorld::new(0);
    let error = invoke(&world, fixture("model-package-approved.json")).await.unwrap_err();
    assert_eq!(error.error_type(), "Rejected.NotCentralAccount");
}
