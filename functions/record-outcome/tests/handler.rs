//! record-outcome over fakes: approvals, rejections and the prod deployment, in ledger and card.

use lambda_runtime::{Context, LambdaEvent};
use promotion_core::deployment::record::Recorded;
use promotion_core::domain::event::ApprovalStatus;
use promotion_core::domain::ids::Stage;
use promotion_core::domain::ledger::{DeploymentRecord, DeploymentState, PromotionState};
use promotion_core::failure::Failure;
use promotion_core::fakes::{DeployWorld, DEPLOY_WORLD_SOURCE};
use promotion_core::ports::{ApprovalResult, CardStatus, StartClaims};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn world_with_execution() -> DeployWorld {
    let world = DeployWorld::new(0);
    world.runs.executions.lock().unwrap().insert("exec-1".into(), (world.package.clone(), "event".into()));
    world
}

async fn invoke(world: &DeployWorld, name: &str) -> Recorded {
    record_outcome::handler(&world.ports, &world.config, LambdaEvent::new(fixture(name), Context::default())).await.unwrap()
}

fn card(world: &DeployWorld) -> Value {
    world.cards.cards.lock().unwrap()["churn-prediction-111111111111-v1"].last().unwrap().clone()
}

#[tokio::test]
async fn waiting_approval_then_prod_deployment_moves_the_card_to_approved() {
    let world = world_with_execution();
    world.runs.approval_results.lock().unwrap().insert(
        "exec-1".into(),
        ApprovalResult { approved: true, by: Some("arn:aws:sts::222222222222:assumed-role/Governance/alice".into()), comment: Some("risk review ok".into()) },
    );

    invoke(&world, "codepipeline-approval-started.json").await;
    assert_eq!(world.cards.statuses.lock().unwrap()["churn-prediction-111111111111-v1"], CardStatus::PendingReview);
    invoke(&world, "codepipeline-approval-succeeded.json").await;
    invoke(&world, "codepipeline-deploy-prod-succeeded.json").await;
    invoke(&world, "codepipeline-deploy-prod-succeeded.json").await;

    assert_eq!(world.cards.statuses.lock().unwrap()["churn-prediction-111111111111-v1"], CardStatus::Approved);
    assert_eq!(world.cards.cards.lock().unwrap()["churn-prediction-111111111111-v1"].len(), 3, "one card version per event, redelivery included");
    assert_eq!(world.audit_actions(), ["awaiting-approval", "prod-approved", "prod-deployed"]);
    let approved = world.ledger.audit.lock().unwrap().values().find(|e| e.action == "prod-approved").cloned().unwrap();
    assert_eq!(approved.detail["detail"]["by"], "arn:aws:sts::222222222222:assumed-role/Governance/alice");
    assert_eq!(approved.detail["detail"]["comment"], "risk review ok");
}

#[tokio::test]
async fn a_governance_rejection_is_recorded_with_its_comment_and_rejects_the_version() {
    let world = world_with_execution();
    world
        .runs
        .approval_results
        .lock()
        .unwrap()
        .insert("exec-1".into(), ApprovalResult { approved: false, by: Some("bob".into()), comment: Some("bias report incomplete".into()) });

    let recorded = invoke(&world, "codepipeline-approval-rejected.json").await;

    assert_eq!(recorded, Recorded::Recorded { package: world.package.clone(), action: "prod-rejected".into() });
    let central = world.central.packages.lock().unwrap()[world.package.as_str()].clone();
    assert_eq!(central.status, Some(ApprovalStatus::Rejected));
    let details = &card(&world)["additional_information"]["custom_details"];
    assert_eq!((details["governance_decision"].as_str(), details["governance_by"].as_str()), (Some("rejected"), Some("bob")));
    assert_eq!(details["governance_comment"], "bias report incomplete");
}

#[tokio::test]
async fn events_of_other_pipelines_are_ignored() {
    let world = world_with_execution();
    let mut event = fixture("codepipeline-approval-started.json");
    event["detail"]["pipeline"] = "someone-elses".into();
    let recorded = record_outcome::handler(&world.ports, &world.config, LambdaEvent::new(event, Context::default())).await.unwrap();
    assert!(matches!(recorded, Recorded::Ignored { .. }));
    assert!(world.audit_actions().is_empty());
}

#[tokio::test]
async fn an_answer_codepipeline_does_not_show_yet_is_retried_not_recorded_with_an_unknown_approver() {
    let world = world_with_execution();
    let event = || LambdaEvent::new(fixture("codepipeline-approval-succeeded.json"), Context::default());

    let early = record_outcome::handler(&world.ports, &world.config, event()).await.unwrap_err();

    assert_eq!(early.error_type(), "Retryable.ApprovalResultPending");
    assert!(world.audit_actions().is_empty(), "nothing is recorded before the approver is known");
    assert_eq!(world.cards.cards.lock().unwrap()["churn-prediction-111111111111-v1"].len(), 1, "the card is untouched");

    world
        .runs
        .approval_results
        .lock()
        .unwrap()
        .insert("exec-1".into(), ApprovalResult { approved: true, by: Some("carol".into()), comment: Some("ok".into()) });
    let redelivered = record_outcome::handler(&world.ports, &world.config, event()).await.unwrap();

    assert_eq!(redelivered, Recorded::Recorded { package: world.package.clone(), action: "prod-approved".into() });
    let approved = world.ledger.audit.lock().unwrap().values().find(|e| e.action == "prod-approved").cloned().unwrap();
    assert_eq!((approved.detail["detail"]["by"].as_str(), approved.detail["detail"]["comment"].as_str()), (Some("carol"), Some("ok")));
}

/// The world's version in prod, as its deployment left it, then revoked in dev as promote-model
/// records it before it publishes `events/model-revoked.json`.
fn in_prod_then_revoked(world: &DeployWorld) {
    let endpoint = "promoted-churn-prediction-111111111111-prod";
    let config = "promoted-churn-prediction-111111111111-v1-prod";
    world.prod.create_endpoint_for_test(endpoint, config);
    let record = DeploymentRecord {
        stage: Stage::Prod,
        endpoint: endpoint.into(),
        package: world.package.clone(),
        config: config.into(),
        state: DeploymentState::InService,
        previous_config: None,
        previous_package: None,
        at: chrono::Utc::now(),
    };
    world.ledger.deployments.lock().unwrap().insert(format!("prod#{endpoint}"), record);
    let mut records = world.ledger.records.lock().unwrap();
    let promotion = records.get_mut(DEPLOY_WORLD_SOURCE).unwrap();
    (promotion.state, promotion.event_id, promotion.reason) =
        (PromotionState::Revoked, "0a1b2c3d-4e5f-4a6b-9c8d-7e6f5a4b3c2d".into(), Some("rejected in dev".into()));
    world.ledger.promoted_from.lock().unwrap().insert(world.package.to_string(), promotion.source.clone());
}

#[tokio::test]
async fn a_model_revoked_event_is_routed_to_the_revocation_and_a_pipeline_change_still_recorded() {
    let world = world_with_execution();
    world.ledger.record_execution(&world.package, "exec-1").await.unwrap();
    in_prod_then_revoked(&world);
    let revoked = fixture("model-revoked.json");

    let reached = record_outcome::dispatch(&world.ports, &world.config, LambdaEvent::new(revoked.clone(), Context::default())).await.unwrap();

    assert_eq!(reached["package"], world.package.to_string());
    assert_eq!(world.runs.stopped.lock().unwrap().keys().collect::<Vec<_>>(), ["exec-1"], "{reached}");
    let sent = world.approvers.sent.lock().unwrap().clone();
    assert!(sent.len() == 1 && sent[0].0.starts_with("HIGH SEVERITY"), "{sent:?}");
    assert_eq!(world.prod.endpoint("promoted-churn-prediction-111111111111-prod").unwrap().config, "promoted-churn-prediction-111111111111-v1-prod");
    let recorded =
        record_outcome::dispatch(&world.ports, &world.config, LambdaEvent::new(fixture("codepipeline-approval-started.json"), Context::default())).await;
    assert_eq!(recorded.unwrap()["action"], "awaiting-approval");

    world.ledger.records.lock().unwrap().get_mut(DEPLOY_WORLD_SOURCE).unwrap().state = PromotionState::Promoted;
    let refused = record_outcome::dispatch(&world.ports, &world.config, LambdaEvent::new(revoked, Context::default())).await.unwrap_err();
    assert_eq!(refused.error_type, "Rejected.NotRevoked", "{}", refused.error_message);
}
