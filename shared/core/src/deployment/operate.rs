//! What operators do from the `promote` CLI: answer the prod approval, roll a stage back,
//! read a model's audit trail.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{json, Value};
use tracing::info;

use crate::domain::deploy::deployment_name;
use crate::domain::event::ApprovalStatus;
use crate::domain::ids::{GroupName, ModelPackageArn, Stage};
use crate::domain::ledger::{AuditEntry, DeploymentRecord, DeploymentState};
use crate::ports::{EndpointStatus, Endpoints, Ledger};

use super::{audit, DeployConfig, DeployError, DeployPorts, APPROVAL_ACTION, APPROVAL_STAGE, DEPLOYED, RESTORED_BY_OPERATOR};

/// The version of a model that waits for the prod approval, and what a governance officer reads
/// before answering: the lookup and the answer are apart so that the tests are shown first.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitingApproval {
    pub package: ModelPackageArn,
    pub execution_id: String,
    /// The latest test run of the version.
    pub tests: Option<Value>,
    token: String,
}

/// The prod approval that waits for `model` (a central group), unanswered.
pub async fn waiting_prod_approval(ports: &DeployPorts, config: &DeployConfig, model: &GroupName) -> Result<WaitingApproval, DeployError> {
    let waiting = ports.runs.pending_approval(&config.pipeline, APPROVAL_STAGE, APPROVAL_ACTION).await?;
    let no_approval = || DeployError::NoPendingApproval(model.to_string());
    let pending = waiting.ok_or_else(no_approval)?;
    let execution_id = pending.execution_id.ok_or_else(no_approval)?;
    let package = ports.runs.execution_package(&config.pipeline, &execution_id).await?.ok_or_else(no_approval)?;
    if package.group() != model {
        return Err(no_approval());
    }
    let tests = latest_tests(ports.ledger.as_ref(), &package).await?;
    Ok(WaitingApproval { package, execution_id, tests, token: pending.token })
}

/// Answers the approval that `waiting` found.
pub async fn answer_prod_approval(
    ports: &DeployPorts,
    config: &DeployConfig,
    waiting: &WaitingApproval,
    approve: bool,
    comment: &str,
) -> Result<(), DeployError> {
    ports.runs.answer_approval(&config.pipeline, APPROVAL_STAGE, APPROVAL_ACTION, &waiting.token, approve, comment).await?;
    let decision = if approve { "prod-approved" } else { "prod-rejected" };
    info!(execution_id = %waiting.execution_id, package = %waiting.package, decision, "prod approval answered");
    Ok(())
}

async fn latest_tests(ledger: &dyn Ledger, package: &ModelPackageArn) -> Result<Option<Value>, DeployError> {
    let history = ledger.history(package).await?;
    Ok(history.into_iter().rev().find(|e| e.action.starts_with("tests-")).map(|e| json!({ "result": e.action, "detail": e.detail })))
}

/// How long a rollback waits for the endpoint to settle, in polls.
const ROLLBACK_POLLS: usize = 120;
/// CodePipeline's timeout of a Lambda action: no deploy job of a deployment begun earlier than
/// this can still be running.
const DEPLOY_ACTION_TIMEOUT: chrono::Duration = chrono::Duration::hours(1);

/// Puts the stage's endpoint back on the newest version that ran there in service before the
/// current one and is still Approved in the central registry, and records it.
pub async fn roll_back(
    ports: &DeployPorts,
    config: &DeployConfig,
    model: &GroupName,
    stage: Stage,
    poll_every: Duration,
) -> Result<DeploymentRecord, DeployError> {
    let settings = config.stages.stage(stage);
    let endpoint = settings.endpoint_name(model, stage);
    let current = ports.ledger.deployment(stage, &endpoint).await?.ok_or_else(|| nothing_to_roll_back(model, stage))?;
    let target = rollback_target(ports, model, stage, &endpoint, &current.package).await?;
    let target_config = deployment_name(&target, stage);
    let endpoints = ports.stages.endpoints(settings).await?;
    refuse_while_deploying(endpoints.as_ref(), &current).await?;
    put_in_service(endpoints.as_ref(), &endpoint, &target_config, poll_every).await?;
    let restored = DeploymentRecord {
        stage,
        endpoint: endpoint.clone(),
        package: target.clone(),
        config: target_config,
        state: DeploymentState::InService,
        previous_config: Some(current.config.clone()),
        previous_package: Some(current.package.clone()),
        at: chrono::Utc::now(),
    };
    ports.ledger.record_deployment(&restored).await?;
    let detail = json!({ "stage": stage, "endpoint": endpoint, "from": current.package, "to": target });
    let operator_action = format!("operator-rollback-{}", uuid::Uuid::new_v4());
    audit(ports.ledger.as_ref(), &current.package, &operator_action, "rolled-back-by-operator", detail.clone()).await?;
    audit(ports.ledger.as_ref(), &target, &operator_action, RESTORED_BY_OPERATOR, detail).await?;
    info!(event_id = %operator_action, package = %target, from = %current.package, %stage, %endpoint, decision = "rolled-back-by-operator", "rollback");
    Ok(restored)
}

fn nothing_to_roll_back(model: &GroupName, stage: Stage) -> DeployError {
    DeployError::NothingToRollBack { model: model.to_string(), stage: stage.to_string() }
}

/// A deployment record left `Deploying` is a deploy job under way, or one that stopped (its
/// pipeline superseded, a terminal error, the action's timeout) and never will finish. The
/// endpoint tells them apart: one still being created, updated or deleted is busy (which
/// `put_in_service` refuses too), and so is an absent one while the job may still create it.
async fn refuse_while_deploying(endpoints: &dyn Endpoints, current: &DeploymentRecord) -> Result<(), DeployError> {
    if current.state != DeploymentState::Deploying || chrono::Utc::now() - current.at >= DEPLOY_ACTION_TIMEOUT {
        return Ok(());
    }
    let settled = endpoints.describe_endpoint(&current.endpoint).await?.is_some_and(|s| matches!(s.status, EndpointStatus::InService | EndpointStatus::Failed));
    if settled {
        return Ok(());
    }
    Err(DeployError::EndpointBusy { endpoint: current.endpoint.clone(), status: format!("deploying {}", current.package) })
}

/// The newest version that ran in service on the endpoint before `current` and is still
/// Approved: a version that failed there never ran, one rejected or revoked since is passed
/// over, and one that ran only after the version it returns to is never gone back to.
async fn rollback_target(
    ports: &DeployPorts,
    model: &GroupName,
    stage: Stage,
    endpoint: &str,
    current: &ModelPackageArn,
) -> Result<ModelPackageArn, DeployError> {
    let trail = history(ports.ledger.as_ref(), model).await?;
    let mut considered = HashSet::new();
    let mut passed_over = Vec::new();
    for version in versions_in_service(&trail, stage, endpoint).into_iter().rev() {
        if version == current || !considered.insert(version) {
            continue;
        }
        let status = ports.central_registry.describe_package(version).await?.status;
        if status == Some(ApprovalStatus::Approved) {
            return Ok(version.clone());
        }
        passed_over.push(format!("{version} is {}", status.map_or("without approval status", |s| s.as_str())));
    }
    if passed_over.is_empty() {
        return Err(nothing_to_roll_back(model, stage));
    }
    Err(DeployError::NoApprovedRollbackTarget { model: model.to_string(), stage: stage.to_string(), skipped: passed_over.join(", ") })
}

/// The versions that ran in service on the endpoint, oldest first, as far as the last one: a
/// deployment puts its version last; an operator's rollback returns to the version it restored,
/// so the versions after it (the ones it rolled back from) are dropped.
fn versions_in_service<'a>(trail: &'a [AuditEntry], stage: Stage, endpoint: &str) -> Vec<&'a ModelPackageArn> {
    let mut ran: Vec<&ModelPackageArn> = Vec::new();
    for entry in trail.iter().filter(|e| ran_in_service(e, stage, endpoint)) {
        let returned_to = (entry.action == RESTORED_BY_OPERATOR).then(|| ran.iter().rposition(|v| *v == &entry.source)).flatten();
        match returned_to {
            Some(at) => ran.truncate(at + 1),
            None if ran.last() == Some(&&entry.source) => {}
            None => ran.push(&entry.source),
        }
    }
    ran
}

fn ran_in_service(entry: &AuditEntry, stage: Stage, endpoint: &str) -> bool {
    (entry.action == DEPLOYED || entry.action == RESTORED_BY_OPERATOR)
        && entry.detail["stage"] == json!(stage)
        && entry.detail["endpoint"].as_str() == Some(endpoint)
}

/// Brings `endpoint` into service on `config`, and waits until it runs it.
async fn put_in_service(endpoints: &dyn Endpoints, endpoint: &str, config: &str, poll_every: Duration) -> Result<(), DeployError> {
    match endpoints.describe_endpoint(endpoint).await? {
        // SageMaker updates no endpoint that is changing or on its way out.
        Some(state) if state.status.is_transitional() || state.status == EndpointStatus::Deleting => {
            return Err(DeployError::EndpointBusy { endpoint: endpoint.to_owned(), status: format!("{:?}", state.status) });
        }
        // A failed test put it back there already.
        Some(state) if state.status == EndpointStatus::InService && state.config_name == config => return Ok(()),
        // SageMaker updates no Failed endpoint: it goes, and comes back on the config.
        Some(state) if state.status == EndpointStatus::Failed => {
            endpoints.delete_endpoint(endpoint).await?;
            wait_until_gone(endpoints, endpoint, poll_every).await?;
            endpoints.create_endpoint(endpoint, config).await?;
        }
        Some(_) => endpoints.update_endpoint(endpoint, config, None).await?,
        None => endpoints.create_endpoint(endpoint, config).await?,
    }
    for _ in 0..ROLLBACK_POLLS {
        let state = endpoints.describe_endpoint(endpoint).await?.ok_or_else(|| DeployError::EndpointVanished(endpoint.to_owned()))?;
        match state.status {
            status if status.is_transitional() => tokio::time::sleep(poll_every).await,
            EndpointStatus::InService if state.config_name == config => return Ok(()),
            _ => {
                return Err(DeployError::EndpointFailed {
                    endpoint: endpoint.to_owned(),
                    reason: state.failure_reason.unwrap_or_else(|| format!("runs {} after the rollback", state.config_name)),
                })
            }
        }
    }
    Err(DeployError::EndpointBusy { endpoint: endpoint.to_owned(), status: "still updating after the rollback".into() })
}

async fn wait_until_gone(endpoints: &dyn Endpoints, endpoint: &str, poll_every: Duration) -> Result<(), DeployError> {
    for _ in 0..ROLLBACK_POLLS {
        if endpoints.describe_endpoint(endpoint).await?.is_none() {
            return Ok(());
        }
        tokio::time::sleep(poll_every).await;
    }
    Err(DeployError::EndpointBusy { endpoint: endpoint.to_owned(), status: "still deleting the failed endpoint".into() })
}

/// The ordered audit trail of every version of `model` (a central group), dev and central.
pub async fn history(ledger: &dyn Ledger, model: &GroupName) -> Result<Vec<AuditEntry>, DeployError> {
    let mut entries = Vec::new();
    for record in ledger.promotions().await?.into_iter().filter(|r| r.central_group.as_ref() == Some(model)) {
        entries.extend(ledger.history(&record.source).await?);
        if let Some(central) = &record.central_package {
            entries.extend(ledger.history(central).await?);
        }
    }
    entries.sort_by_key(|e| e.at);
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployment::testing::{add_version, deadline, deploy, job_event};
    use crate::deployment::JobOutcome;
    use crate::failure::Failure;
    use crate::fakes::{DeployWorld, Transition};
    use crate::ports::{InvokeResult, ModelRegistry, PendingApproval, PipelineRuns};

    fn model() -> GroupName {
        "churn-prediction-111111111111".parse().unwrap()
    }

    const PROD_ENDPOINT: &str = "promoted-churn-prediction-111111111111-prod";

    fn prod_calls(world: &DeployWorld) -> Vec<String> {
        world.prod.calls.lock().unwrap().clone()
    }

    async fn roll_back_prod(world: &DeployWorld) -> Result<DeploymentRecord, DeployError> {
        roll_back(&world.ports, &world.config, &model(), Stage::Prod, Duration::from_millis(1)).await
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
    async fn the_waiting_approval_is_found_with_its_tests_and_answered_only_when_asked() {
        let world = DeployWorld::new(0);
        let execution = world.runs.start("p", &world.package, "t").await.unwrap();
        *world.runs.pending.lock().unwrap() = Some(PendingApproval { token: "tok".into(), execution_id: Some(execution.clone()) });
        audit(world.ledger.as_ref(), &world.package, "job-7", "tests-passed", json!({ "passed": 2, "failed": 0 })).await.unwrap();

        let other: GroupName = "fraud-111111111111".parse().unwrap();
        let refused = waiting_prod_approval(&world.ports, &world.config, &other).await.unwrap_err();
        assert_eq!(refused.error_type(), "Rejected.NoPendingApproval");
        let waiting = waiting_prod_approval(&world.ports, &world.config, &model()).await.unwrap();

        assert_eq!((&waiting.package, waiting.execution_id.as_str()), (&world.package, execution.as_str()));
        assert_eq!(waiting.tests, Some(json!({ "result": "tests-passed", "detail": { "passed": 2, "failed": 0 } })));
        assert!(world.runs.answers.lock().unwrap().is_empty(), "looking the approval up answers nothing");

        answer_prod_approval(&world.ports, &world.config, &waiting, false, "latency too high").await.unwrap();
        assert_eq!(world.runs.answers.lock().unwrap().as_slice(), [("tok".to_owned(), false, "latency too high".to_owned())]);
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
        let from: Vec<String> = world.ledger.history(&second).await.unwrap().into_iter().map(|e| e.action).collect();
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

        let restored = roll_back(&world.ports, &world.config, &model(), Stage::Test, Duration::from_millis(1)).await.unwrap();
        let again = roll_back(&world.ports, &world.config, &model(), Stage::Test, Duration::from_millis(1)).await.unwrap_err();

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
        assert!(matches!(deploy(&world, &world.package, Stage::Prod).await, JobOutcome::Succeeded { .. }));
        let first_job = crate::deployment::deploy::handle_deploy_job(&world.ports, &world.config, &job_event("v2-1", Stage::Prod, &second, None), deadline())
            .await
            .unwrap();
        assert!(matches!(first_job, JobOutcome::Continuing { .. }), "{first_job:?}");

        let error = roll_back_prod(&world).await.unwrap_err();

        assert_eq!(error.error_type(), "Retryable.EndpointBusy", "{error}");
        assert!(!prod_calls(&world).iter().any(|c| c.ends_with("direct")));
    }

    #[tokio::test]
    async fn a_deploy_job_that_stopped_after_it_began_blocks_no_rollback() {
        let world = DeployWorld::new(0);
        let second = add_version(&world, 2);
        assert!(matches!(deploy(&world, &world.package, Stage::Prod).await, JobOutcome::Succeeded { .. }));
        let began = crate::deployment::deploy::handle_deploy_job(&world.ports, &world.config, &job_event("v2-1", Stage::Prod, &second, None), deadline())
            .await
            .unwrap();
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
        assert!(matches!(deploy(&world, &world.package, Stage::Prod).await, JobOutcome::Succeeded { .. }));
        world.prod.endpoints.lock().unwrap().get_mut(PROD_ENDPOINT).unwrap().status = EndpointStatus::Failed;
        let began = crate::deployment::deploy::handle_deploy_job(&world.ports, &world.config, &job_event("v2-1", Stage::Prod, &second, None), deadline())
            .await
            .unwrap();
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
        let error = roll_back(&world.ports, &world.config, &model(), Stage::Test, Duration::from_millis(1)).await.unwrap_err();
        assert_eq!(error.error_type(), "Rejected.NothingToRollBack");
        assert!(matches!(deploy(&world, &world.package, Stage::Test).await, JobOutcome::Succeeded { .. }));
        let error = roll_back(&world.ports, &world.config, &model(), Stage::Test, Duration::from_millis(1)).await.unwrap_err();
        assert_eq!(error.error_type(), "Rejected.NothingToRollBack", "the only version that ran is the current one");
    }
}
