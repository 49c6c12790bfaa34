//! A revocation's reach over the fakes: the pipeline, the test and prod endpoints, the audit trail.

use std::sync::Arc;

use super::*;
use crate::deployment::testing::{add_version, deploy, revoked_in_dev};
use crate::deployment::JobOutcome;
use crate::domain::event::ApprovalStatus;
use crate::fakes::{DeployWorld, Fault};
use crate::ports::{
    ActionRunStatus, AuditTrail, DeploymentRecords, EndpointStatus, ExecutionStatus, FailureKind, ModelRegistry, PendingApproval, PipelineRuns, StartClaims,
};

const TEST_ENDPOINT: &str = "promoted-churn-prediction-111111111111-test";
const PROD_ENDPOINT: &str = "promoted-churn-prediction-111111111111-prod";

fn config_of(version: u32, stage: &str) -> String {
    format!("promoted-churn-prediction-111111111111-v{version}-{stage}")
}

async fn reach(world: &DeployWorld, event: &Value) -> Result<Reached, RevocationError> {
    reach_revocation(&world.ports, &world.config, event, Utc::now() + chrono::Duration::minutes(15)).await
}

async fn deployed(world: &DeployWorld, versions: &[&ModelPackageArn], stage: Stage) {
    for version in versions {
        assert!(matches!(deploy(world, version, stage).await, JobOutcome::Succeeded { .. }), "{version} to {stage}");
    }
}

/// An execution of `version` started by start-deployment, as the ledger and CodePipeline know it.
async fn started(world: &DeployWorld, version: &ModelPackageArn, token: &str) -> String {
    let execution_id = world.runs.start(&world.config.pipeline, version, token).await.unwrap();
    world.ledger.record_execution(version, &execution_id).await.unwrap();
    execution_id
}

fn trail_of(world: &DeployWorld, version: &ModelPackageArn) -> Vec<String> {
    let mut entries: Vec<AuditEntry> = world.ledger.audit.lock().unwrap().values().filter(|e| &e.source == version).cloned().collect();
    entries.sort_by_key(|e| e.at);
    entries.into_iter().map(|e| e.action.to_string()).filter(|a| a.contains("revocation") || a.contains("revoked")).collect()
}

fn endpoint(world: &DeployWorld, stage: Stage) -> Option<(EndpointStatus, String)> {
    let endpoints = if stage == Stage::Test { &world.test } else { &world.prod };
    let name = if stage == Stage::Test { TEST_ENDPOINT } else { PROD_ENDPOINT };
    endpoints.endpoint(name).map(|e| (e.status, e.config))
}

#[tokio::test]
async fn a_prod_approval_waiting_for_the_version_is_rejected_with_the_reason_and_nothing_reaches_prod() {
    let world = DeployWorld::new(1);
    deployed(&world, &[&world.package], Stage::Test).await;
    let execution = started(&world, &world.package, "approval-1").await;
    *world.runs.pending.lock().unwrap() = Some(PendingApproval { token: "approval-token".into(), execution_id: Some(execution.clone()) });
    let event = revoked_in_dev(&world, &world.package);

    let reached = reach(&world, &event).await.unwrap();

    let answers = world.runs.answers.lock().unwrap().clone();
    assert_eq!(answers.len(), 1, "{answers:?}");
    let (token, approved, summary) = &answers[0];
    assert_eq!((token.as_str(), *approved), ("approval-token", false));
    assert!(summary.starts_with("revoked in dev: Revoked: source version") && summary.contains("dev-rejection-1"), "{summary}");
    assert!(world.runs.stopped.lock().unwrap().is_empty(), "the rejection ends the execution: no stop besides");
    assert_eq!(world.runs.execution(&world.config.pipeline, &execution).await.unwrap().unwrap().status, ExecutionStatus::Failed);
    assert_eq!(endpoint(&world, Stage::Test), None, "its test endpoint had nothing to go back to");
    assert!(reached.steps.iter().any(|s| s.contains(&execution) && s.contains("prod approval rejected")), "{:?}", reached.steps);

    // DeployProd of that execution, delivered anyway, deploys nothing.
    let prod = deploy(&world, &world.package, Stage::Prod).await;
    assert!(matches!(prod, JobOutcome::Failed { .. }), "{prod:?}");
    assert_eq!(endpoint(&world, Stage::Prod), None);
    assert!(world.prod.calls.lock().unwrap().is_empty(), "{:?}", world.prod.calls.lock().unwrap());
    assert_eq!(trail_of(&world, &world.package), ["revocation-approval-rejected", "revocation-endpoint-deleted"]);
}

#[tokio::test]
async fn a_running_execution_is_stopped_and_one_that_ended_is_left() {
    let world = DeployWorld::new(1);
    let running = started(&world, &world.package, "approval-1").await;
    let finished = started(&world, &world.package, "approval-2").await;
    world.runs.ended.lock().unwrap().insert(finished.clone(), ExecutionStatus::Succeeded);
    world.runs.report(&running, "DeployTest", "DeployTest", ActionRunStatus::Succeeded, None);
    world.runs.report(&running, "TestModel", "TestModel", ActionRunStatus::InProgress, None);
    let event = revoked_in_dev(&world, &world.package);

    let reached = reach(&world, &event).await.unwrap();

    let stopped = world.runs.stopped.lock().unwrap().clone();
    assert_eq!(stopped.keys().collect::<Vec<_>>(), [&running]);
    assert!(stopped[&running].starts_with("revoked in dev: ") && stopped[&running].chars().count() <= 200, "{}", stopped[&running]);
    assert!(world.runs.answers.lock().unwrap().is_empty());
    let entry = world.ledger.audit.lock().unwrap().values().find(|e| e.action == AuditAction::RevocationExecutionStopped).cloned().unwrap();
    assert_eq!((entry.event_id, entry.detail["execution_id"].as_str()), (format!("dev-rejection-1:{running}"), Some(running.as_str())));
    assert_eq!(entry.detail["abandoned"], json!(["TestModel.TestModel"]), "what the stop cut short");
    assert!(reached.steps.contains(&format!("execution {finished}: left: Succeeded already")), "{:?}", reached.steps);
}

#[tokio::test]
async fn prod_serving_the_version_goes_back_to_the_previous_good_version_and_the_ledger_follows() {
    let world = DeployWorld::new(1);
    let second = add_version(&world, 2);
    deployed(&world, &[&world.package, &second], Stage::Prod).await;
    let event = revoked_in_dev(&world, &second);

    reach(&world, &event).await.unwrap();

    assert_eq!(endpoint(&world, Stage::Prod), Some((EndpointStatus::InService, config_of(1, "prod"))));
    assert_eq!(world.prod.calls.lock().unwrap().last().unwrap(), &format!("UpdateEndpoint {PROD_ENDPOINT} {} direct", config_of(1, "prod")));
    let record = world.ledger.deployment(Stage::Prod, PROD_ENDPOINT).await.unwrap().unwrap();
    assert_eq!((&record.package, record.state, record.previous_package.as_ref()), (&world.package, DeploymentState::InService, Some(&second)));
    assert_eq!(trail_of(&world, &second), ["revocation-rollback-started", "revocation-rolled-back"]);
    let restored: Vec<String> = world.ledger.history(&world.package).await.unwrap().into_iter().map(|e| e.action.to_string()).collect();
    assert_eq!(restored.last().map(String::as_str), Some("restored-on-revocation"));
    assert!(world.approvers.sent.lock().unwrap().is_empty(), "a rollback needs no alarm");
    assert_eq!(endpoint(&world, Stage::Test), None, "test never ran it: left alone");
}

#[tokio::test]
async fn a_previous_version_revoked_itself_is_passed_over_even_if_re_approved_by_hand() {
    let world = DeployWorld::new(1);
    let (second, third) = (add_version(&world, 2), add_version(&world, 3));
    deployed(&world, &[&world.package, &second, &third], Stage::Prod).await;
    revoked_in_dev(&world, &second);
    let by_hand = world.central.packages.lock().unwrap()[second.as_str()].clone();
    world.central.set_approval(&by_hand, ApprovalStatus::Approved, "approved again by hand", &[]).await.unwrap();
    let event = revoked_in_dev(&world, &third);

    reach(&world, &event).await.unwrap();

    assert_eq!(endpoint(&world, Stage::Prod), Some((EndpointStatus::InService, config_of(1, "prod"))), "never version 2");
    let record = world.ledger.deployment(Stage::Prod, PROD_ENDPOINT).await.unwrap().unwrap();
    assert_eq!((record.package.version(), record.previous_package.map(|p| p.version())), (1, Some(3)));
}

#[tokio::test]
async fn with_nothing_to_go_back_to_test_is_deleted_and_prod_keeps_serving_with_a_high_severity_notification() {
    let world = DeployWorld::new(1);
    deployed(&world, &[&world.package], Stage::Test).await;
    deployed(&world, &[&world.package], Stage::Prod).await;
    let event = revoked_in_dev(&world, &world.package);

    reach(&world, &event).await.unwrap();

    assert_eq!(endpoint(&world, Stage::Test), None);
    let test_record = world.ledger.deployment(Stage::Test, TEST_ENDPOINT).await.unwrap().unwrap();
    assert_eq!((&test_record.package, test_record.state), (&world.package, DeploymentState::RolledBack));
    assert_eq!(endpoint(&world, Stage::Prod), Some((EndpointStatus::InService, config_of(1, "prod"))), "prod is not taken down");
    let sent = world.approvers.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    let (subject, message) = &sent[0];
    assert!(subject.starts_with("HIGH SEVERITY") && subject.contains("churn-prediction-111111111111 v1"), "{subject}");
    assert!(message.contains(PROD_ENDPOINT) && message.contains("444444444444") && message.contains("What to do now"), "{message}");
    assert_eq!(trail_of(&world, &world.package), ["revocation-endpoint-deleted", "revocation-still-serving"]);
}

#[tokio::test]
async fn a_redelivered_revocation_rolls_back_nothing_twice_and_tells_nobody_twice() {
    let world = DeployWorld::new(1);
    let (second, third) = (add_version(&world, 2), add_version(&world, 3));
    deployed(&world, &[&third], Stage::Test).await;
    deployed(&world, &[&second, &third], Stage::Prod).await;
    let running = started(&world, &third, "approval-3").await;
    // Version 2 revoked earlier: prod has nothing to go back to.
    revoked_in_dev(&world, &second);
    let first = revoked_in_dev(&world, &third);
    reach(&world, &first).await.unwrap();
    let (prod_calls, test_calls) = (world.prod.calls.lock().unwrap().len(), world.test.calls.lock().unwrap().len());
    let entries = world.ledger.audit.lock().unwrap().len();

    let again = reach(&world, &first).await.unwrap();
    let republished = reach(&world, &revoked_in_dev(&world, &third)).await.unwrap();

    assert_eq!(world.approvers.sent.lock().unwrap().len(), 1, "one high-severity notification");
    assert_eq!((world.prod.calls.lock().unwrap().len(), world.test.calls.lock().unwrap().len()), (prod_calls, test_calls), "no endpoint touched again");
    assert_eq!(world.runs.stopped.lock().unwrap().len(), 1, "{running} stopped once");
    assert_eq!(world.ledger.audit.lock().unwrap().len(), entries, "no audit entry repeated");
    for reached in [again, republished] {
        assert!(reached.steps.iter().any(|s| s.contains(&running) && s.contains("Stopped already")), "{:?}", reached.steps);
        assert_eq!(reached.steps.iter().filter(|s| s.contains("done with by this revocation already")).count(), 2, "{:?}", reached.steps);
    }
}

#[tokio::test]
async fn a_rollback_interrupted_midway_is_finished_by_the_redelivery_on_the_same_version() {
    let world = DeployWorld::new(1);
    let (second, third) = (add_version(&world, 2), add_version(&world, 3));
    deployed(&world, &[&world.package, &second, &third], Stage::Prod).await;
    world.prod.fault("UpdateEndpoint", Fault::Fail(PortError::new("UpdateEndpoint", FailureKind::Retryable, "ThrottlingException")));
    let event = revoked_in_dev(&world, &third);

    let interrupted = reach(&world, &event).await.unwrap_err();
    assert_eq!(interrupted.error_type(), "Retryable.RevocationUnfinished", "{interrupted}");
    assert_eq!(trail_of(&world, &third), ["revocation-rollback-started"]);
    // Meanwhile version 2, the target, is rejected: the rollback begun still goes to it, and a
    // redelivery never makes a second choice midway.
    let target = world.central.packages.lock().unwrap()[second.as_str()].clone();
    world.central.set_approval(&target, ApprovalStatus::Rejected, "by hand", &[]).await.unwrap();
    reach(&world, &event).await.unwrap();

    assert_eq!(endpoint(&world, Stage::Prod), Some((EndpointStatus::InService, config_of(2, "prod"))));
    let updates: Vec<String> = world.prod.calls.lock().unwrap().iter().filter(|c| c.ends_with("direct")).cloned().collect();
    assert_eq!(updates, [format!("UpdateEndpoint {PROD_ENDPOINT} {} direct", config_of(2, "prod"))]);
    assert_eq!(trail_of(&world, &third), ["revocation-rollback-started", "revocation-rolled-back"]);
}

#[tokio::test]
async fn a_model_revoked_event_for_a_version_the_ledger_holds_promoted_touches_nothing_and_is_audited() {
    let world = DeployWorld::new(1);
    deployed(&world, &[&world.package], Stage::Prod).await;
    let running = started(&world, &world.package, "approval-1").await;
    let mut forged = revoked_in_dev(&world, &world.package);
    world.ledger.records.lock().unwrap().values_mut().for_each(|r| r.state = crate::domain::ledger::PromotionState::Promoted);
    forged["detail"]["reason"] = "trust me".into();
    let prod_calls = world.prod.calls.lock().unwrap().len();

    let refused = reach(&world, &forged).await.unwrap_err();

    assert_eq!(refused.error_type(), "Rejected.NotRevoked", "{refused}");
    assert_eq!(world.prod.calls.lock().unwrap().len(), prod_calls);
    assert_eq!(endpoint(&world, Stage::Prod), Some((EndpointStatus::InService, config_of(1, "prod"))));
    assert!(world.runs.stopped.lock().unwrap().is_empty() && world.runs.answers.lock().unwrap().is_empty(), "{running} runs on");
    let refusal = world.ledger.audit.lock().unwrap().values().find(|e| e.action == AuditAction::RevocationRefused).cloned().unwrap();
    assert_eq!(refusal.event_id, forged["id"].as_str().unwrap());
    assert_eq!(refusal.detail["reason"], "the ledger holds Promoted");
    let mut elsewhere = forged.clone();
    elsewhere["account"] = "999999999999".into();
    assert_eq!(reach(&world, &elsewhere).await.unwrap_err().error_type(), "Rejected.NotCentralAccount");
}

#[tokio::test]
async fn a_deployment_of_the_version_still_landing_on_prod_is_let_land_then_taken_back() {
    let world = DeployWorld::new(3);
    let second = add_version(&world, 2);
    deployed(&world, &[&world.package], Stage::Prod).await;
    world.pipeline_at(&second, crate::domain::pipeline::PipelineStage::DeployProd);
    let job = crate::deployment::testing::job_event("v2-prod", Stage::Prod, &second, None);
    let began = crate::deployment::deploy::handle_deploy_job(&world.ports, &world.config, &job, crate::deployment::testing::deadline()).await.unwrap();
    assert!(matches!(began, JobOutcome::Continuing { .. }), "{began:?}");
    assert_eq!(endpoint(&world, Stage::Prod), Some((EndpointStatus::Updating, config_of(1, "prod"))));
    let event = revoked_in_dev(&world, &second);

    reach(&world, &event).await.unwrap();

    assert_eq!(endpoint(&world, Stage::Prod), Some((EndpointStatus::InService, config_of(1, "prod"))));
    let updates: Vec<String> = world.prod.calls.lock().unwrap().iter().filter(|c| c.starts_with("UpdateEndpoint")).cloned().collect();
    assert_eq!(updates.last().unwrap(), &format!("UpdateEndpoint {PROD_ENDPOINT} {} direct", config_of(1, "prod")), "{updates:?}");
    assert_eq!(trail_of(&world, &second), ["revocation-rollback-started", "revocation-rolled-back"]);
}

/// CodePipeline throttling every call.
struct Throttled;

#[async_trait::async_trait]
impl PipelineRuns for Throttled {
    async fn execution(&self, _: &str, _: &str) -> crate::ports::PortResult<Option<ExecutionView>> {
        Err(throttled("GetPipelineExecution"))
    }
    async fn action_runs(&self, _: &str, _: &str) -> crate::ports::PortResult<Vec<crate::ports::ActionRun>> {
        Err(throttled("ListActionExecutions"))
    }
    async fn stop(&self, _: &str, _: &str, _: &str) -> crate::ports::PortResult<()> {
        Err(throttled("StopPipelineExecution"))
    }
    async fn start(&self, _: &str, _: &ModelPackageArn, _: &str) -> crate::ports::PortResult<String> {
        Err(throttled("StartPipelineExecution"))
    }
    async fn pending_approval(&self, _: &str, _: &str, _: &str) -> crate::ports::PortResult<Option<PendingApproval>> {
        Err(throttled("GetPipelineState"))
    }
    async fn answer_approval(&self, _: &str, _: &str, _: &str, _: &str, _: bool, _: &str) -> crate::ports::PortResult<()> {
        Err(throttled("PutApprovalResult"))
    }
    async fn approval_result(&self, _: &str, _: &str, _: &str) -> crate::ports::PortResult<Option<crate::ports::ApprovalResult>> {
        Err(throttled("ListActionExecutions"))
    }
}

fn throttled(operation: &'static str) -> PortError {
    PortError::new(operation, FailureKind::Retryable, "ThrottlingException")
}

#[tokio::test]
async fn codepipeline_out_of_reach_holds_back_no_rollback_and_the_redelivery_does_the_rest() {
    let world = DeployWorld::new(1);
    let second = add_version(&world, 2);
    deployed(&world, &[&world.package, &second], Stage::Prod).await;
    let running = started(&world, &second, "approval-2").await;
    let event = revoked_in_dev(&world, &second);
    let unreachable = DeployPorts { runs: Arc::new(Throttled), ..world.ports.clone() };

    let first = reach_revocation(&unreachable, &world.config, &event, Utc::now() + chrono::Duration::minutes(15)).await.unwrap_err();

    assert_eq!(first.error_type(), "Retryable.RevocationUnfinished", "{first}");
    assert!(first.to_string().contains("the version's executions (Retryable.GetPipelineState"), "{first}");
    assert_eq!(endpoint(&world, Stage::Prod), Some((EndpointStatus::InService, config_of(1, "prod"))), "rolled back all the same");
    reach(&world, &event).await.unwrap();
    assert_eq!(world.runs.stopped.lock().unwrap().keys().collect::<Vec<_>>(), [&running]);
    let updates = world.prod.calls.lock().unwrap().iter().filter(|c| c.starts_with("UpdateEndpoint")).count();
    assert_eq!(updates, 2, "version 2's deployment, then the one rollback");
}
