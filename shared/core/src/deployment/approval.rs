//! A governance officer's answer to the prod approval, from the CLI: the lookup and the answer are
//! apart so that the version's tests are shown first.

use serde_json::{json, Value};
use tracing::info;

use crate::domain::ids::{GroupName, ModelPackageArn};
use crate::domain::pipeline::{PipelineStage, APPROVAL_ACTION};
use crate::failure::Failure;
use crate::ports::{AuditTrail, PortError};

use super::{DeployConfig, DeployPorts};

/// Why there is no prod approval to answer.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("no pipeline execution of {0} waits for a prod approval")]
    NoPendingApproval(String),
    #[error(transparent)]
    Aws(#[from] PortError),
}

impl Failure for ApprovalError {
    fn is_retryable(&self) -> bool {
        matches!(self, Self::Aws(port) if port.is_retryable())
    }

    fn name(&self) -> &'static str {
        match self {
            Self::NoPendingApproval(_) => "NoPendingApproval",
            Self::Aws(port) => port.name(),
        }
    }
}

/// The version of a model that waits for the prod approval, and what a governance officer reads
/// before answering.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitingApproval {
    pub package: ModelPackageArn,
    pub execution_id: String,
    /// The latest test run of the version.
    pub tests: Option<Value>,
    token: String,
}

/// The prod approval that waits for `model` (a central group), unanswered.
pub async fn waiting_prod_approval(ports: &DeployPorts, config: &DeployConfig, model: &GroupName) -> Result<WaitingApproval, ApprovalError> {
    let waiting = ports.runs.pending_approval(&config.pipeline, PipelineStage::ApproveProd.as_str(), APPROVAL_ACTION).await?;
    let no_approval = || ApprovalError::NoPendingApproval(model.to_string());
    let pending = waiting.ok_or_else(no_approval)?;
    let execution_id = pending.execution_id.ok_or_else(no_approval)?;
    let package = ports.runs.execution_package(&config.pipeline, &execution_id).await?.ok_or_else(no_approval)?;
    if package.group() != model {
        return Err(no_approval());
    }
    let tests = latest_tests(ports.audit.as_ref(), &package).await?;
    Ok(WaitingApproval { package, execution_id, tests, token: pending.token })
}

/// Answers the approval that `waiting` found.
pub async fn answer_prod_approval(
    ports: &DeployPorts,
    config: &DeployConfig,
    waiting: &WaitingApproval,
    approve: bool,
    comment: &str,
) -> Result<(), ApprovalError> {
    ports.runs.answer_approval(&config.pipeline, PipelineStage::ApproveProd.as_str(), APPROVAL_ACTION, &waiting.token, approve, comment).await?;
    let decision = if approve { "prod-approved" } else { "prod-rejected" };
    info!(execution_id = %waiting.execution_id, package = %waiting.package, decision, "prod approval answered");
    Ok(())
}

async fn latest_tests(trail: &dyn AuditTrail, package: &ModelPackageArn) -> Result<Option<Value>, ApprovalError> {
    let history = trail.history(package).await?;
    Ok(history.into_iter().rev().find(|e| e.action.is_test_verdict()).map(|e| json!({ "result": e.action, "detail": e.detail })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::audit::{AuditAction, AuditEntry};
    use crate::fakes::DeployWorld;
    use crate::ports::{PendingApproval, PipelineRuns};

    #[tokio::test]
    async fn the_waiting_approval_is_found_with_its_tests_and_answered_only_when_asked() {
        let world = DeployWorld::new(0);
        let execution = world.runs.start("p", &world.package, "t").await.unwrap();
        *world.runs.pending.lock().unwrap() = Some(PendingApproval { token: "tok".into(), execution_id: Some(execution.clone()) });
        let tested = AuditEntry::now(&world.package, "job-7", AuditAction::TestsPassed, json!({ "passed": 2, "failed": 0 }));
        world.ledger.append(&tested).await.unwrap();

        let other: GroupName = "fraud-111111111111".parse().unwrap();
        let refused = waiting_prod_approval(&world.ports, &world.config, &other).await.unwrap_err();
        assert_eq!(refused.error_type(), "Rejected.NoPendingApproval");
        let model: GroupName = "churn-prediction-111111111111".parse().unwrap();
        let waiting = waiting_prod_approval(&world.ports, &world.config, &model).await.unwrap();

        assert_eq!((&waiting.package, waiting.execution_id.as_str()), (&world.package, execution.as_str()));
        assert_eq!(waiting.tests, Some(json!({ "result": "tests-passed", "detail": { "passed": 2, "failed": 0 } })));
        assert!(world.runs.answers.lock().unwrap().is_empty(), "looking the approval up answers nothing");

        answer_prod_approval(&world.ports, &world.config, &waiting, false, "latency too high").await.unwrap();
        assert_eq!(world.runs.answers.lock().unwrap().as_slice(), [("tok".to_owned(), false, "latency too high".to_owned())]);
    }
}
