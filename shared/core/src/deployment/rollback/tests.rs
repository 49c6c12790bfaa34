//! Operators' rollbacks against the fakes.

use super::*;
use crate::deployment::testing::{add_version, deadline, deploy, job_event, revoked_in_dev};
use crate::deployment::JobOutcome;
use crate::domain::event::ApprovalStatus;
use crate::failure::Failure;
use crate::fakes::{DeployWorld, Transition};
use crate::ports::{AuditTrail, DeploymentRecords, InvokeResult, ModelRegistry};

fn model() -> GroupName {
    "churn-prediction-111111111111".parse().unwrap()
}

const PROD_ENDPOINT: &str = "promoted-churn-prediction-111111111111-prod";

fn prod_calls(world: &DeployWorld) -> Vec<String> {
    world.prod.calls.lock().unwrap().clone()
}

async fn roll_back_prod(world: &DeployWorld) -> Result<DeploymentRecord, RollbackError> {
    roll_back(&world.ports, &world.config, &model(), Stage::Prod).await
}

/// Versions 1 and 2 deployed to prod in turn, each through deploy-model.
async fn prod_ran_one_then_two() -> (DeployWorld, ModelPackageArn) {
    let world = DeployWorld::new(1);
    let second = add_version(&world, 2);
    assert!(matches!(deploy(&world, &world.package, Stage::Prod).await, JobOutcome::Succeeded { .. }));
    assert!(matches!(deploy(&world, &second, Stage::Prod).await, JobOutcome::Succeeded { .. }));
    assert_eq!(world.prod.endpoint(PROD_ENDPOINT).unwrap().config, "promoted-churn-prediction-111111111111-v2-prod");
    (world, second)
}

#[tokio::test]
async fn a_rollback_returns_to_the_version_that_ran_before_and_records_it() {
    let (world, second) = prod_ran_one_then_two().await;

    let restored = roll_back_prod(&world).await.unwrap();

    assert_eq!((&restored.package, restored.config.as_str()), (&world.package, "promoted-churn-prediction-111111111111-v1-prod"));
    assert_eq!((restored.state, restored.previous_package.as_ref()), (DeploymentState::InService, Some(&second)));
    assert_eq!(world.ledger.deployment(Stage::Prod, PROD_ENDPOINT).await.unwrap().as_ref(), Some(&restored));
    let endpoint = world.prod.endpoint(PROD_ENDPOINT).unwrap();
    assert_eq!((endpoint.status, endpoint.config.as_str()), (EndpointStatus::InService, "promoted-churn-prediction-111111111111-v1-prod"));
    assert_eq!(prod_calls(&world).last().unwrap(), &format!("UpdateEndpoint {PROD_ENDPOINT} promoted-churn-prediction-111111111111-v1-prod direct"));
    assert_eq!(world.audit_actions(), ["deploy-started", "deployed", "restored-by-operator"]);
    let from: Vec<String> = world.ledger.history(&second).await.unwrap().into_iter().map(|e| e.action.to_string()).collect();
    assert_eq!(from, ["deploy-started", "deployed", "rolled-back-by-operator"]);
}

#[tokio::test]
async fn a_second_rollback_never_goes_forward_to_the_version_rolled_back_from() {
    let (world, second) = prod_ran_one_then_two().await;
    assert_eq!(roll_back_prod(&world).await.unwrap().package, world.package);
    let calls_before = prod_calls(&world).len();

    let again = roll_back_prod(&world).await.unwrap_err();

    assert_eq!(again.error_type(), "Rejected.NothingToRollBack", "{again}");
    assert_eq!(prod_calls(&world).len(), calls_before, "the endpoint is left alone");
    assert_eq!(world.prod.endpoint(PROD_ENDPOINT).unwrap().config, "promoted-churn-prediction-111111111111-v1-prod");
    let record = world.ledger.deployment(Stage::Prod, PROD_ENDPOINT).await.unwrap().unwrap();
    assert_eq!((record.package, record.previous_package), (world.package.clone(), Some(second)));
}

#[tokio::test]
async fn rollbacks_in_a_row_go_further_back_each_time() {
    let world = DeployWorld::new(1);
    let (second, third) = (add_version(&world, 2), add_version(&world, 3));
    for version in [&world.package, &second, &third] {
        assert!(matches!(deploy(&world, version, Stage::Prod).await, JobOutcome::Succeeded { .. }));
    }

    let restored: Vec<ModelPackageArn> = vec![roll_back_prod(&world).await.unwrap().package, roll_back_prod(&world).await.unwrap().package];
    let last = roll_back_prod(&world).await.unwrap_err();

    assert_eq!(restored, [second, world.package.clone()]);
    assert_eq!(last.error_type(), "Rejected.NothingToRollBack", "{last}");
    let updates: Vec<String> = prod_calls(&world).into_iter().filter(|c| c.ends_with("direct")).collect();
    assert_eq!(
        updates,
        [
            format!("UpdateEndpoint {PROD_ENDPOINT} promoted-churn-prediction-111111111111-v2-prod direct"),
            format!("UpdateEndpoint {PROD_ENDPOINT} promoted-churn-prediction-111111111111-v1-prod direct"),
        ]
    );
    assert_eq!(world.prod.endpoint(PROD_ENDPOINT).unwrap().config, "promoted-churn-prediction-111111111111-v1-prod");
}

#[tokio::test]
async fn a_rollback_after_an_alarm_rolled_the_new_version_back_returns_to_the_last_good_one_and_never_to_the_bad_one() {
    let world = DeployWorld::new(1);
    let second = add_version(&world, 2);
    assert!(matches!(deploy(&world, &world.package, Stage::Prod).await, JobOutcome::Succeeded { .. }));
    *world.prod.transition.lock().unwrap() = Transition::SilentRollback;
    let failed = deploy(&world, &second, Stage::Prod).await;
    assert!(matches!(failed, JobOutcome::Failed { ref error_type, .. } if error_type == "Rejected.SilentRollback"), "{failed:?}");
    *world.prod.transition.lock().unwrap() = Transition::Succeed;
    let updates_before = prod_calls(&world).len();

    let restored = roll_back_prod(&world).await.unwrap();
    assert_eq!(restored.package, world.package);
    assert_eq!(prod_calls(&world).len(), updates_before, "the endpoint runs version 1 already: nothing to update");
    let again = roll_back_prod(&world).await.unwrap_err();

    assert_eq!(again.error_type(), "Rejected.NothingToRollBack", "{again}");
    assert_eq!(world.prod.endpoint(PROD_ENDPOINT).unwrap().config, "promoted-churn-prediction-111111111111-v1-prod");
    assert_eq!(world.ledger.deployment(Stage::Prod, PROD_ENDPOINT).await.unwrap().unwrap().package, world.package);
}

#[tokio::test]
async fn a_rollback_after_failed_tests_returns_to_the_last_good_version_and_not_to_the_rejected_one() {
    let world = DeployWorld::new(0);
    let second = add_version(&world, 2);
    let test_endpoint = "promoted-churn-prediction-111111111111-test";
    assert!(matches!(deploy(&world, &world.package, Stage::Test).await, JobOutcome::Succeeded { .. }));
    assert!(matches!(deploy(&world, &second, Stage::Test).await, JobOutcome::Succeeded { .. }));
    world.test.replies.lock().unwrap().extend((0..2).map(|_| InvokeResult { status: 200, body: b"error: model not loaded".to_vec() }));
    let deadline = chrono::Utc::now() + chrono::Duration::minutes(5);
    let tested =
        crate::deployment::test::handle_test_job(&world.ports, &world.config, &job_event("tests-2", Stage::Test, &second, None), deadline).await.unwrap();
    assert!(matches!(tested, JobOutcome::Failed { .. }), "{tested:?}");
    assert_eq!(world.central.packages.lock().unwrap()[second.as_str()].status, Some(ApprovalStatus::Rejected));

    let restored = roll_back(&world.ports, &world.config, &model(), Stage::Test).await.unwrap();
    let again = roll_back(&world.ports, &world.config, &model(), Stage::Test).await.unwrap_err();

    assert_eq!(restored.package, world.package);
    assert_eq!(world.test.endpoint(test_endpoint).unwrap().config, "promoted-churn-prediction-111111111111-v1-test");
    assert_eq!(again.error_type(), "Rejected.NothingToRollBack", "version 2 ran after version 1, and failed: {again}");
    assert_eq!(world.test.endpoint(test_endpoint).unwrap().config, "promoted-churn-prediction-111111111111-v1-test");
}

#[tokio::test]
async fn a_rollback_to_a_version_revoked_since_is_refused_with_the_reason() {
    let (world, second) = prod_ran_one_then_two().await;
    let first = world.central.packages.lock().unwrap()[world.package.as_str()].clone();
    world.central.set_approval(&first, ApprovalStatus::Rejected, "revoked in dev", &[]).await.unwrap();
    let calls_before = prod_calls(&world).len();

    let error = roll_back_prod(&world).await.unwrap_err();

    assert_eq!(error.error_type(), "Rejected.NoApprovedRollbackTarget");
    assert!(error.to_string().contains(&format!("{} is Rejected", world.package)), "{error}");
    assert_eq!(prod_calls(&world).len(), calls_before, "the endpoint is left alone");
    assert_eq!(world.ledger.deployment(Stage::Prod, PROD_ENDPOINT).await.unwrap().unwrap().package, second);
}

#[tokio::test]
async fn a_rollback_never_returns_to_a_version_revoked_in_dev_even_re_approved_by_hand() {
    let (world, second) = prod_ran_one_then_two().await;
    revoked_in_dev(&world, &world.package);
    let by_hand = world.central.packages.lock().unwrap()[world.package.as_str()].clone();
    world.central.set_approval(&by_hand, ApprovalStatus::Approved, "approved again by hand", &[]).await.unwrap();
    let calls_before = prod_calls(&world).len();

    let error = roll_back_prod(&world).await.unwrap_err();

    assert_eq!(error.error_type(), "Rejected.NoApprovedRollbackTarget");
    assert!(error.to_string().contains(&format!("{} was revoked in dev", world.package)), "{error}");
    assert_eq!(prod_calls(&world).len(), calls_before, "the endpoint is left alone");
    assert_eq!(world.prod.endpoint(PROD_ENDPOINT).unwrap().config, "promoted-churn-prediction-111111111111-v2-prod");
    assert_eq!(world.ledger.deployment(Stage::Prod, PROD_ENDPOINT).await.unwrap().unwrap().package, second);
}

#[tokio::test]
async fn failed_tests_never_put_the_endpoint_back_on_a_version_revoked_since_it_was_replaced() {
    let world = DeployWorld::new(0);
    let (second, third) = (add_version(&world, 2), add_version(&world, 3));
    let test_endpoint = "promoted-churn-prediction-111111111111-test";
    for version in [&world.package, &second, &third] {
        assert!(matches!(deploy(&world, version, Stage::Test).await, JobOutcome::Succeeded { .. }));
    }
    // Version 2, which version 3 replaced, is revoked meanwhile (and re-approved by hand).
    revoked_in_dev(&world, &second);
    let by_hand = world.central.packages.lock().unwrap()[second.as_str()].clone();
    world.central.set_approval(&by_hand, ApprovalStatus::Approved, "approved again by hand", &[]).await.unwrap();
    world.test.replies.lock().unwrap().extend((0..2).map(|_| InvokeResult { status: 200, body: b"error: model not loaded".to_vec() }));

    let tested =
        crate::deployment::test::handle_test_job(&world.ports, &world.config, &job_event("tests-3", Stage::Test, &third, None), deadline()).await.unwrap();

    assert!(matches!(tested, JobOutcome::Failed { .. }), "{tested:?}");
    let endpoint = world.test.describe_endpoint(test_endpoint).await.unwrap().unwrap();
    assert_eq!(endpoint.config_name, "promoted-churn-prediction-111111111111-v1-test", "back to version 1, the last good one, never version 2");
    let updates: Vec<String> = world.test.calls.lock().unwrap().iter().filter(|c| c.starts_with("UpdateEndpoint")).cloned().collect();
    assert_eq!(updates.last().unwrap(), &format!("UpdateEndpoint {test_endpoint} promoted-churn-prediction-111111111111-v1-test direct"));
}

#[tokio::test]
async fn a_rollback_replaces_a_failed_endpoint_which_sagemaker_would_not_update() {
    let (world, _) = prod_ran_one_then_two().await;
    world.prod.endpoints.lock().unwrap().get_mut(PROD_ENDPOINT).unwrap().status = EndpointStatus::Failed;

    roll_back_prod(&world).await.unwrap();

    let calls = prod_calls(&world);
    let v1 = "promoted-churn-prediction-111111111111-v1-prod";
    assert_eq!(calls[calls.len() - 2..], [format!("DeleteEndpoint {PROD_ENDPOINT}"), format!("CreateEndpoint {PROD_ENDPOINT} {v1}")]);
    let endpoint = world.prod.endpoint(PROD_ENDPOINT).unwrap();
    assert_eq!((endpoint.status, endpoint.config.as_str()), (EndpointStatus::InService, v1));
}

#[tokio::test]
async fn no_rollback_while_a_deployment_is_under_way() {
    let world = DeployWorld::new(3);
    let second = add_version(&world, 2);
    world.pipeline_at(&second, crate::domain::pipeline::PipelineStage::DeployProd);
    assert!(matches!(deploy(&world, &world.package, Stage::Prod).await, JobOutcome::Succeeded { .. }));
    let first_job =
        crate::deployment::deploy::handle_deploy_job(&world.ports, &world.config, &job_event("v2-1", Stage::Prod, &second, None), deadline()).await.unwrap();
    assert!(matches!(first_job, JobOutcome::Continuing { .. }), "{first_job:?}");

    let error = roll_back_prod(&world).await.unwrap_err();

    assert_eq!(error.error_type(), "Retryable.EndpointBusy", "{error}");
    assert!(!prod_calls(&world).iter().any(|c| c.ends_with("direct")));
}

#[tokio::test]
async fn a_deploy_job_that_stopped_after_it_began_blocks_no_rollback() {
    let world = DeployWorld::new(0);
    let second = add_version(&world, 2);
    world.pipeline_at(&second, crate::domain::pipeline::PipelineStage::DeployProd);
    assert!(matches!(deploy(&world, &world.package, Stage::Prod).await, JobOutcome::Succeeded { .. }));
    let began =
        crate::deployment::deploy::handle_deploy_job(&world.ports, &world.config, &job_event("v2-1", Stage::Prod, &second, None), deadline()).await.unwrap();
    assert!(matches!(began, JobOutcome::Continuing { .. }), "{began:?}");
    // CodePipeline invokes the action no more (superseded, timed out); the update ends on its own.
    assert_eq!(world.prod.describe_endpoint(PROD_ENDPOINT).await.unwrap().unwrap().status, EndpointStatus::InService);
    assert_eq!(world.ledger.deployment(Stage::Prod, PROD_ENDPOINT).await.unwrap().unwrap().state, DeploymentState::Deploying);

    let restored = roll_back_prod(&world).await.unwrap();

    assert_eq!((&restored.package, restored.previous_package.as_ref()), (&world.package, Some(&second)));
    let endpoint = world.prod.endpoint(PROD_ENDPOINT).unwrap();
    assert_eq!((endpoint.status, endpoint.config.as_str()), (EndpointStatus::InService, "promoted-churn-prediction-111111111111-v1-prod"));
}

#[tokio::test]
async fn an_absent_endpoint_is_left_to_a_deploy_job_that_may_still_create_it_until_the_action_timed_out() {
    let world = DeployWorld::new(0);
    let second = add_version(&world, 2);
    world.pipeline_at(&second, crate::domain::pipeline::PipelineStage::DeployProd);
    assert!(matches!(deploy(&world, &world.package, Stage::Prod).await, JobOutcome::Succeeded { .. }));
    world.prod.endpoints.lock().unwrap().get_mut(PROD_ENDPOINT).unwrap().status = EndpointStatus::Failed;
    let began =
        crate::deployment::deploy::handle_deploy_job(&world.ports, &world.config, &job_event("v2-1", Stage::Prod, &second, None), deadline()).await.unwrap();
    assert!(matches!(began, JobOutcome::Continuing { ref summary, .. } if summary.contains("create it anew")), "{began:?}");
    assert!(world.prod.endpoint(PROD_ENDPOINT).is_none());

    let busy = roll_back_prod(&world).await.unwrap_err();
    assert_eq!(busy.error_type(), "Retryable.EndpointBusy", "{busy}");
    assert!(world.prod.endpoint(PROD_ENDPOINT).is_none(), "the endpoint is left to the deploy job");

    let mut record = world.ledger.deployment(Stage::Prod, PROD_ENDPOINT).await.unwrap().unwrap();
    record.at -= chrono::Duration::minutes(61);
    world.ledger.record_deployment(&record).await.unwrap();
    let restored = roll_back_prod(&world).await.unwrap();

    assert_eq!(restored.package, world.package);
    let endpoint = world.prod.endpoint(PROD_ENDPOINT).unwrap();
    assert_eq!((endpoint.status, endpoint.config.as_str()), (EndpointStatus::InService, "promoted-churn-prediction-111111111111-v1-prod"));
    assert_eq!(prod_calls(&world).last().unwrap(), &format!("CreateEndpoint {PROD_ENDPOINT} promoted-churn-prediction-111111111111-v1-prod"));
}

#[tokio::test]
async fn a_rollback_asks_nothing_of_an_endpoint_being_deleted_or_patched_by_sagemaker() {
    for status in [EndpointStatus::Deleting, EndpointStatus::SystemUpdating] {
        let (world, second) = prod_ran_one_then_two().await;
        world.prod.endpoints.lock().unwrap().get_mut(PROD_ENDPOINT).unwrap().status = status.clone();
        let calls_before = prod_calls(&world).len();

        let error = roll_back_prod(&world).await.unwrap_err();

        assert_eq!(error.error_type(), "Retryable.EndpointBusy", "{status:?}: {error}");
        assert!(error.to_string().contains(&format!("{status:?}")), "{error}");
        assert_eq!(prod_calls(&world).len(), calls_before, "{status:?}: no call SageMaker would refuse");
        assert_eq!(world.ledger.deployment(Stage::Prod, PROD_ENDPOINT).await.unwrap().unwrap().package, second);
    }
}

#[tokio::test]
async fn nothing_to_roll_back_to_is_said_plainly() {
    let world = DeployWorld::new(0);
    let error = roll_back(&world.ports, &world.config, &model(), Stage::Test).await.unwrap_err();
    assert_eq!(error.error_type(), "Rejected.NothingToRollBack");
    assert!(matches!(deploy(&world, &world.package, Stage::Test).await, JobOutcome::Succeeded { .. }));
    let error = roll_back(&world.ports, &world.config, &model(), Stage::Test).await.unwrap_err();
    assert_eq!(error.error_type(), "Rejected.NothingToRollBack", "the only version that ran is the current one");
}

#[tokio::test]
async fn an_operators_rollback_names_the_operator_in_both_entries() {
    let (world, second) = prod_ran_one_then_two().await;
    let operator = crate::domain::operator::Operator::from_caller_arn("arn:aws:sts::222222222222:assumed-role/Operations/dana@example.com");
    let ports = crate::operator::deploy_ports_for(&world.ports, &operator);

    roll_back(&ports, &world.config, &model(), Stage::Prod).await.unwrap();

    for version in [&second, &world.package] {
        let last = world.ledger.history(version).await.unwrap().pop().unwrap();
        assert!(last.action == "rolled-back-by-operator" || last.action == "restored-by-operator", "{last:?}");
        assert_eq!(last.detail["operator"]["arn"], "arn:aws:sts::222222222222:assumed-role/Operations/dana@example.com");
        assert_eq!(last.detail["operator"]["principal"]["arn"], "arn:aws:iam::222222222222:role/Operations");
    }
}
