use serde_json::json;

use super::*;
use crate::domain::identity::{distinct, Distinct, Principal};
use crate::domain::pipeline::PipelineStage;
use crate::fakes::{DeployWorld, PromoteWorld, DEPLOY_WORLD_SOURCE};
use crate::promotion::Outcome;

fn fixture(name: &str) -> Value {
    let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn dev_call() -> Value {
    fixture("cloudtrail-update-model-package-dev.json")
}

fn central_call() -> Value {
    fixture("cloudtrail-update-model-package-central.json")
}

fn source() -> ModelPackageArn {
    DEPLOY_WORLD_SOURCE.parse().unwrap()
}

async fn central_of(world: &PromoteWorld) -> ModelPackageArn {
    world.ledger.record(&source()).unwrap().central_package.unwrap()
}

/// The fake world, before anyone's approval is recorded.
fn no_approver_yet() -> DeployWorld {
    let world = DeployWorld::new(0);
    world.ledger.approvers.lock().unwrap().clear();
    world
}

#[tokio::test]
async fn the_dev_approver_is_recorded_against_the_source_version_before_the_promotion() {
    let world = PromoteWorld::new();

    let recorded = record_dev_approver(&world.ports, &world.config, &dev_call()).await.unwrap();
    assert!(matches!(world.deliver_approval().await.unwrap(), Outcome::Promoted(_)));

    let ApproverOutcome::ApproverRecorded { approver } = recorded else { panic!("{recorded:?}") };
    assert_eq!((approver.gate, &approver.package), (Gate::DevApproval, &source()));
    let found = approvers_of(world.ledger.as_ref(), world.ledger.as_ref(), &central_of(&world).await).await.unwrap();
    assert_eq!(found.dev, Some(approver.clone()));
    assert_eq!(
        found.dev.unwrap().normalised,
        Principal::Role { arn: "arn:aws:iam::111111111111:role/DataScientist".into(), source_identity: Some("alice@example.com".into()) }
    );
    assert_eq!((found.central, found.prod), (None, None));
}

#[tokio::test]
async fn the_dev_approver_is_recorded_after_the_promotion_and_a_redelivery_keeps_the_first_record() {
    let world = PromoteWorld::new();
    assert!(matches!(world.deliver_approval().await.unwrap(), Outcome::Promoted(_)));

    record_dev_approver(&world.ports, &world.config, &dev_call()).await.unwrap();
    let mut later = dev_call();
    later["detail"]["eventID"] = json!("another-call");
    later["detail"]["userIdentity"]["sessionContext"]["sourceIdentity"] = json!("mallory");
    let kept = record_dev_approver(&world.ports, &world.config, &later).await.unwrap();

    assert_eq!(kept, ApproverOutcome::ApproverKept { package: source(), gate: Gate::DevApproval });
    let found = approvers_of(world.ledger.as_ref(), world.ledger.as_ref(), &central_of(&world).await).await.unwrap();
    assert_eq!(found.dev.unwrap().event_id, "7f0c6a52-3c1e-4d0b-9d55-2f7a1e6b8c01", "the first record stays");
}

#[tokio::test]
async fn a_call_that_approved_nothing_or_came_from_a_stranger_records_nothing() {
    let world = PromoteWorld::new();
    let mut failed = dev_call();
    failed["detail"]["errorCode"] = json!("AccessDenied");
    let mut rejected = dev_call();
    rejected["detail"]["requestParameters"]["modelApprovalStatus"] = json!("Rejected");
    for event in [failed, rejected] {
        let outcome = record_dev_approver(&world.ports, &world.config, &event).await.unwrap();
        assert!(matches!(outcome, ApproverOutcome::Ignored { .. }), "{outcome:?}");
    }
    let stranger = dev_call().to_string().replace("111111111111", "555555555555");
    let refused = record_dev_approver(&world.ports, &world.config, &serde_json::from_str(&stranger).unwrap()).await.unwrap_err();
    assert_eq!(refused.error_type(), "Rejected.UnknownSourceAccount");
    let forged = record_dev_approver(&world.ports, &world.config, &central_call()).await.unwrap_err();
    assert_eq!(forged.error_type(), "Rejected.UnknownSourceAccount", "a central call is no dev approval");
    assert!(world.ledger.approvers.lock().unwrap().is_empty());
}

#[tokio::test]
async fn the_central_and_the_prod_approvers_are_recorded_against_the_central_version() {
    let world = no_approver_yet();
    world.pipeline_at(&world.package, PipelineStage::ApproveProd);
    record_dev_approver_in(&world).await;

    let central = record_central_approver(&world.ports, &world.config, &central_call()).await.unwrap();
    assert!(matches!(central, ApproverOutcome::ApproverRecorded { .. }), "{central:?}");
    let execution = crate::fakes::world_execution(&world.package);
    world.runs.decide_approval(&execution, true, Some("arn:aws:sts::222222222222:assumed-role/Governance/frank"), Some("ok"));
    let mut approved = fixture("codepipeline-approval-succeeded.json");
    approved["detail"]["execution-id"] = json!(execution);
    crate::deployment::record::record_outcome(&world.ports, &world.config, &approved).await.unwrap();

    let found = approvers_of(world.ledger.as_ref(), world.ledger.as_ref(), &world.package).await.unwrap();
    let (dev, central, prod) = (found.dev.unwrap(), found.central.unwrap(), found.prod.unwrap());
    assert_eq!(central.principal.as_deref(), Some("arn:aws:sts::222222222222:assumed-role/MLEngineer/bob"));
    assert_eq!(prod.principal.as_deref(), Some("arn:aws:sts::222222222222:assumed-role/Governance/frank"));
    assert_eq!(prod.normalised, Principal::Role { arn: "arn:aws:iam::222222222222:role/Governance".into(), source_identity: None });
    assert_eq!(prod.event_id, approved["id"]);
    assert_eq!([distinct(&prod, &central), distinct(&prod, &dev)], [Distinct::Yes, Distinct::Yes]);
}

#[tokio::test]
async fn a_central_approval_from_another_account_records_nothing() {
    let world = no_approver_yet();
    let refused = record_central_approver(&world.ports, &world.config, &dev_call()).await.unwrap_err();
    assert_eq!(refused.error_type(), "Rejected.NotCentralAccount");
    assert!(world.ledger.approvers.lock().unwrap().is_empty());
}

async fn record_dev_approver_in(world: &DeployWorld) {
    let call = crate::domain::cloudtrail::ApprovalCall::parse(&dev_call()).unwrap();
    record(world.ledger.as_ref(), call.approver(Gate::DevApproval).unwrap()).await.unwrap();
}
