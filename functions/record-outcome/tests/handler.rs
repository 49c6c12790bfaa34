//! record-outcome over fakes: approvals, rejections and the prod deployment, in ledger and card.

use lambda_runtime::{Context, LambdaEvent};
use promotion_core::deployment::record::Recorded;
use promotion_core::domain::event::ApprovalStatus;
use promotion_core::domain::ids::Stage;
use promotion_core::domain::ledger::{DeploymentRecord, DeploymentState, PromotionState};
use promotion_core::domain::pipeline::PipelineStage;
use promotion_core::failure::Failure;
use promotion_core::fakes::{DeployWorld, DEPLOY_WORLD_SOURCE};
use promotion_core::ports::{ActionRunStatus, CardStatus, StartClaims};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Execution exec-1 of the world's version waits at the prod approval.
fn world_with_execution() -> DeployWorld {
    let world = DeployWorld::new(0);
    world.pipeline_at(&world.package, PipelineStage::ApproveProd);
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
    invoke(&world, "codepipeline-approval-started.json").await;
    assert_eq!(world.cards.statuses.lock().unwrap()["churn-prediction-111111111111-v1"], CardStatus::PendingReview);
    world.runs.decide_approval("exec-1", true, Some("arn:aws:sts::222222222222:assumed-role/Governance/alice"), Some("risk review ok"));
    invoke(&world, "codepipeline-approval-succeeded.json").await;
    world.runs.report("exec-1", "DeployProd", "DeployProd", ActionRunStatus::Succeeded, None);
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
    world.runs.decide_approval("exec-1", false, Some("bob"), Some("bias report incomplete"));

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

    assert_eq!(early.error_type(), "Retryable.OutcomePending");
    assert!(world.audit_actions().is_empty(), "nothing is recorded before the approver is known");
    assert_eq!(world.cards.cards.lock().unwrap()["churn-prediction-111111111111-v1"].len(), 1, "the card is untouched");

    world.runs.decide_approval("exec-1", true, Some("carol"), Some("ok"));
    let redelivered = record_outcome::handler(&world.ports, &world.config, event()).await.unwrap();

    assert_eq!(redelivered, Recorded::Recorded { package: world.package.clone(), action: "prod-approved".into() });
    let approved = world.ledger.audit.lock().unwrap().values().find(|e| e.action == "prod-approved").cloned().unwrap();
    assert_eq!((approved.detail["detail"]["by"].as_str(), approved.detail["detail"]["comment"].as_str()), (Some("carol"), Some("ok")));
}

#[tokio::test]
async fn a_forged_prod_deployment_success_marks_no_card_approved_and_is_audited() {
    let world = world_with_execution();
    world.runs.decide_approval("exec-1", true, Some("alice"), Some("ok"));
    let cards_before = world.cards.cards.lock().unwrap()["churn-prediction-111111111111-v1"].clone();

    // CodePipeline has DeployProd of exec-1 nowhere: the event is someone's word only.
    let forged =
        record_outcome::handler(&world.ports, &world.config, LambdaEvent::new(fixture("codepipeline-deploy-prod-succeeded.json"), Context::default())).await;

    assert_eq!(forged.unwrap_err().error_type(), "Rejected.OutcomeNotConfirmed");
    assert_eq!(world.cards.cards.lock().unwrap()["churn-prediction-111111111111-v1"], cards_before, "the card is untouched");
    assert!(!world.cards.statuses.lock().unwrap().values().any(|s| *s == CardStatus::Approved));
    assert_eq!(world.audit_actions(), ["refused"]);
    let refused = world.ledger.audit.lock().unwrap().values().find(|e| e.action == "refused").cloned().unwrap();
    assert_eq!((refused.detail["gate"].as_str(), refused.detail["refusal"].as_str()), (Some("record-outcome"), Some("OutcomeNotConfirmed")));
}

#[tokio::test]
async fn a_prod_deployment_success_codepipeline_still_shows_running_is_retried_not_recorded() {
    let world = world_with_execution();
    world.runs.decide_approval("exec-1", true, Some("alice"), Some("ok"));
    world.runs.report("exec-1", "DeployProd", "DeployProd", ActionRunStatus::InProgress, None);

    let early =
        record_outcome::handler(&world.ports, &world.config, LambdaEvent::new(fixture("codepipeline-deploy-prod-succeeded.json"), Context::default())).await;

    assert_eq!(early.unwrap_err().error_type(), "Retryable.OutcomePending");
    assert!(world.audit_actions().is_empty());
    assert!(!world.cards.statuses.lock().unwrap().values().any(|s| *s == CardStatus::Approved));
}

#[tokio::test]
async fn a_forged_rejection_of_an_approval_still_waiting_rejects_nothing() {
    let world = world_with_execution();

    let forged =
        record_outcome::handler(&world.ports, &world.config, LambdaEvent::new(fixture("codepipeline-approval-rejected.json"), Context::default())).await;

    assert_eq!(forged.unwrap_err().error_type(), "Retryable.OutcomePending");
    let central = world.central.packages.lock().unwrap()[world.package.as_str()].clone();
    assert_eq!(central.status, Some(ApprovalStatus::Approved), "the version stays approved");
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
