//! What operators do from the `promote` CLI: answer the prod approval, roll a stage back,
//! read a model's audit trail.

use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};

use crate::domain::deploy::endpoint_name;
use crate::domain::ids::{GroupName, ModelPackageArn, Stage};
use crate::domain::ledger::{AuditEntry, DeploymentRecord, DeploymentState};
use crate::ports::{EndpointStatus, Ledger};

use super::{audit, DeployConfig, DeployError, DeployPorts, APPROVAL_ACTION, APPROVAL_STAGE};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApprovalAnswer {
    pub package: ModelPackageArn,
    pub execution_id: Option<String>,
    pub approved: bool,
    /// The latest test run of the version, shown before the decision.
    pub tests: Option<Value>,
}

/// Answers the waiting prod approval of `model` (a central group).
pub async fn answer_prod_approval(
    ports: &DeployPorts,
    config: &DeployConfig,
    model: &GroupName,
    approve: bool,
    comment: &str,
) -> Result<ApprovalAnswer, DeployError> {
    let waiting = ports.runs.pending_approval(&config.pipeline, APPROVAL_STAGE, APPROVAL_ACTION).await?;
    let no_approval = || DeployError::NoPendingApproval(model.to_string());
    let pending = waiting.ok_or_else(no_approval)?;
    let execution_id = pending.execution_id.clone().ok_or_else(no_approval)?;
    let package = ports.runs.execution_package(&config.pipeline, &execution_id).await?.ok_or_else(no_approval)?;
    if package.group() != model {
        return Err(no_approval());
    }
    let tests = latest_tests(ports.ledger.as_ref(), &package).await?;
    ports.runs.answer_approval(&config.pipeline, APPROVAL_STAGE, APPROVAL_ACTION, &pending.token, approve, comment).await?;
    Ok(ApprovalAnswer { package, execution_id: Some(execution_id), approved: approve, tests })
}

async fn latest_tests(ledger: &dyn Ledger, package: &ModelPackageArn) -> Result<Option<Value>, DeployError> {
    let history = ledger.history(package).await?;
    Ok(history.into_iter().rev().find(|e| e.action.starts_with("tests-")).map(|e| json!({ "result": e.action, "detail": e.detail })))
}

/// How long a rollback waits for the endpoint to settle.
const ROLLBACK_POLLS: usize = 120;

/// Puts the stage's endpoint back on the version it ran before the latest deployment.
pub async fn roll_back(ports: &DeployPorts, config: &DeployConfig, model: &GroupName, stage: Stage, poll_every: Duration) -> Result<DeploymentRecord, DeployError> {
    let endpoint = endpoint_name(model, stage);
    let nothing = || DeployError::NothingToRollBack { model: model.to_string(), stage: stage.to_string() };
    let current = ports.ledger.deployment(stage, &endpoint).await?.ok_or_else(nothing)?;
    let (Some(previous_config), Some(previous_package)) = (current.previous_config.clone(), current.previous_package.clone()) else {
        return Err(nothing());
    };
    let endpoints = ports.stages.endpoints(config.stages.stage(stage)).await?;
    endpoints.update_endpoint(&endpoint, &previous_config, None).await?;
    for _ in 0..ROLLBACK_POLLS {
        let state = endpoints.describe_endpoint(&endpoint).await?.ok_or_else(|| DeployError::EndpointVanished(endpoint.clone()))?;
        match state.status {
            status if status.is_transitional() => tokio::time::sleep(poll_every).await,
            EndpointStatus::InService if state.config_name == previous_config => {
                let restored = DeploymentRecord {
                    stage,
                    endpoint: endpoint.clone(),
                    package: previous_package.clone(),
                    config: previous_config.clone(),
                    state: DeploymentState::InService,
                    previous_config: Some(current.config.clone()),
                    previous_package: Some(current.package.clone()),
                    at: chrono::Utc::now(),
                };
                ports.ledger.record_deployment(&restored).await?;
                let detail = json!({ "stage": stage, "endpoint": endpoint, "from": current.package, "to": previous_package });
                let operator_action = format!("operator-rollback-{}", uuid::Uuid::new_v4());
                audit(ports.ledger.as_ref(), &current.package, &operator_action, "rolled-back-by-operator", detail.clone()).await?;
                audit(ports.ledger.as_ref(), &previous_package, &operator_action, "restored-by-operator", detail).await?;
                return Ok(restored);
            }
            _ => {
                return Err(DeployError::EndpointFailed {
                    endpoint,
                    reason: state.failure_reason.unwrap_or_else(|| format!("runs {} after the rollback", state.config_name)),
                })
            }
        }
    }
    Err(DeployError::EndpointBusy { endpoint, status: "still updating after the rollback".into() })
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
    use crate::fakes::DeployWorld;
    use crate::ports::{PendingApproval, PipelineRuns};

    fn model() -> GroupName {
        "churn-prediction-111111111111".parse().unwrap()
    }

    #[tokio::test]
    async fn an_approval_is_answered_for_the_waiting_execution_of_that_model_only() {
        let world = DeployWorld::new(0);
        let execution = world.runs.start("p", &world.package, "t").await.unwrap();
        *world.runs.pending.lock().unwrap() = Some(PendingApproval { token: "tok".into(), execution_id: Some(execution) });

        let other: GroupName = "fraud-111111111111".parse().unwrap();
        assert_eq!(answer_prod_approval(&world.ports, &world.config, &other, true, "ok").await.unwrap_err().error_type(), "Rejected.NoPendingApproval");
        let answer = answer_prod_approval(&world.ports, &world.config, &model(), false, "latency too high").await.unwrap();

        assert_eq!(answer.package, world.package);
        assert_eq!(world.runs.answers.lock().unwrap().as_slice(), [("tok".to_owned(), false, "latency too high".to_owned())]);
    }

    #[tokio::test]
    async fn a_rollback_restores_the_previous_version_and_records_it() {
        let world = DeployWorld::new(1);
        let endpoint = "promoted-churn-prediction-111111111111-prod";
        world.prod.create_endpoint_for_test(endpoint, "promoted-churn-prediction-111111111111-v2-prod");
        let earlier: ModelPackageArn = "arn:aws:sagemaker:us-east-1:222222222222:model-package/churn-prediction-111111111111/2".parse().unwrap();
        let current = DeploymentRecord {
            stage: Stage::Prod,
            endpoint: endpoint.into(),
            package: world.package.clone(),
            config: "promoted-churn-prediction-111111111111-v1-prod".into(),
            state: DeploymentState::InService,
            previous_config: Some("promoted-churn-prediction-111111111111-v2-prod".into()),
            previous_package: Some(earlier.clone()),
            at: chrono::Utc::now(),
        };
        world.ports.ledger.record_deployment(&current).await.unwrap();

        let restored = roll_back(&world.ports, &world.config, &model(), Stage::Prod, Duration::from_millis(1)).await.unwrap();

        assert_eq!((restored.package, restored.config.as_str()), (earlier.clone(), "promoted-churn-prediction-111111111111-v2-prod"));
        assert_eq!(restored.previous_package, Some(world.package.clone()));
        assert_eq!(world.prod.endpoint(endpoint).unwrap().config, "promoted-churn-prediction-111111111111-v2-prod");
        assert!(world.prod.calls.lock().unwrap().iter().any(|c| c.starts_with("UpdateEndpoint") && c.ends_with("direct")));
        assert_eq!(world.audit_actions(), ["rolled-back-by-operator"]);
    }

    #[tokio::test]
    async fn nothing_to_roll_back_to_is_said_plainly() {
        let world = DeployWorld::new(0);
        let error = roll_back(&world.ports, &world.config, &model(), Stage::Test, Duration::from_millis(1)).await.unwrap_err();
        assert_eq!(error.error_type(), "Rejected.NothingToRollBack");
    }
}
