//! start-deployment: a central approval starts the deploy pipeline for exactly that version.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use tracing::info;

use crate::domain::event::{ApprovalStatus, StateChange};
use crate::domain::ids::ModelPackageArn;
use crate::domain::ledger::{PromotionState, StartClaim};
use crate::domain::lineage;

use super::{audit, DeployConfig, DeployError, DeployPorts};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum StartOutcome {
    Started {
        package: ModelPackageArn,
        execution_id: String,
    },
    /// A redelivery of an approval whose execution was started already.
    AlreadyStarted {
        package: ModelPackageArn,
        execution_id: String,
    },
    Ignored {
        package: ModelPackageArn,
        reason: String,
    },
}

pub async fn handle_central_approval(ports: &DeployPorts, config: &DeployConfig, event: &Value, deadline: DateTime<Utc>) -> Result<StartOutcome, DeployError> {
    let change = StateChange::parse(event)?;
    if change.account != config.central_account {
        return Err(DeployError::NotCentral(change.account));
    }
    let package = change.package.clone();
    if change.status != ApprovalStatus::Approved {
        return Ok(StartOutcome::Ignored { package, reason: format!("status is {}", change.status.as_str()) });
    }
    check_promoted(ports, &package).await?;
    let execution_id = match ports.ledger.claim_start(&change.event_id, deadline, Utc::now()).await? {
        StartClaim::Started { execution_id } => {
            info!(event_id = %change.event_id, package = %package, execution_id, decision = "duplicate", "start-deployment");
            return Ok(StartOutcome::AlreadyStarted { package, execution_id });
        }
        StartClaim::Busy => return Err(DeployError::StartInProgress(change.event_id)),
        StartClaim::Granted => ports.runs.start(&config.pipeline, &package, &change.event_id).await?,
    };
    ports.ledger.record_start(&change.event_id, &execution_id).await?;
    audit(ports.ledger.as_ref(), &package, &change.event_id, "pipeline-started", json!({ "pipeline": config.pipeline, "execution_id": execution_id })).await?;
    info!(event_id = %change.event_id, package = %package, execution_id, decision = "started", "start-deployment");
    Ok(StartOutcome::Started { package, execution_id })
}

/// Only versions this service promoted, and did not revoke, are deployed.
async fn check_promoted(ports: &DeployPorts, package: &ModelPackageArn) -> Result<(), DeployError> {
    let central = ports.central_registry.describe_package(package).await?;
    let source: ModelPackageArn =
        central.customer_metadata.get(lineage::SOURCE_ARN).and_then(|raw| raw.parse().ok()).ok_or_else(|| DeployError::NotPromoted(package.clone()))?;
    let record = ports.ledger.get(&source).await?.ok_or_else(|| DeployError::NotPromoted(package.clone()))?;
    match record.state {
        _ if record.central_package.as_ref() != Some(package) => Err(DeployError::NotPromoted(package.clone())),
        PromotionState::Promoted => Ok(()),
        PromotionState::Revoked => Err(DeployError::Revoked(package.clone())),
        PromotionState::InProgress | PromotionState::RejectedInDev => Err(DeployError::NotPromoted(package.clone())),
    }
}
