//! start-deployment: a central approval starts the deploy pipeline for exactly that version.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use tracing::info;

use crate::domain::audit::{AuditAction, AuditEntry};
use crate::domain::event::{ApprovalStatus, EventError, StateChange};
use crate::domain::ids::{AccountId, ModelPackageArn};
use crate::domain::ledger::{PromotionState, StartClaim};
use crate::domain::lineage;
use crate::failure::Failure;
use crate::ports::PortError;

use super::{DeployConfig, DeployPorts};

/// Why start-deployment starts no pipeline.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid event: {0}")]
    InvalidEvent(#[from] EventError),
    #[error("the event is from account {0}, not the central account")]
    NotCentral(AccountId),
    #[error("{0} was never promoted by this service; only promoted versions are deployed")]
    NotPromoted(ModelPackageArn),
    #[error("{0} was revoked; it cannot be deployed")]
    Revoked(ModelPackageArn),
    #[error("an approval of {0} is being started by another invocation")]
    StartInProgress(String),
    #[error(transparent)]
    Aws(#[from] PortError),
}

impl Failure for StartError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Aws(port) => port.is_retryable(),
            Self::StartInProgress(_) => true,
            _ => false,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::InvalidEvent(_) => "InvalidEvent",
            Self::NotCentral(_) => "NotCentralAccount",
            Self::NotPromoted(_) => "NotPromoted",
            Self::Revoked(_) => "VersionRevoked",
            Self::StartInProgress(_) => "StartInProgress",
            Self::Aws(port) => port.name(),
        }
    }
}

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

pub async fn handle_central_approval(ports: &DeployPorts, config: &DeployConfig, event: &Value, deadline: DateTime<Utc>) -> Result<StartOutcome, StartError> {
    let change = StateChange::parse(event)?;
    if change.account != config.central_account {
        return Err(StartError::NotCentral(change.account));
    }
    let package = change.package.clone();
    if change.status != ApprovalStatus::Approved {
        return Ok(StartOutcome::Ignored { package, reason: format!("status is {}", change.status.as_str()) });
    }
    check_promoted(ports, &package).await?;
    let execution_id = match ports.starts.claim_start(&change.event_id, deadline, Utc::now()).await? {
        StartClaim::Started { execution_id } => {
            info!(event_id = %change.event_id, package = %package, execution_id, decision = "duplicate", "start-deployment");
            return Ok(StartOutcome::AlreadyStarted { package, execution_id });
        }
        StartClaim::Busy => return Err(StartError::StartInProgress(change.event_id)),
        StartClaim::Granted => ports.runs.start(&config.pipeline, &package, &change.event_id).await?,
    };
    // Before the start is recorded: a redelivery after a crash here starts (CodePipeline answers
    // the same token with the same execution) and records again, so the version never loses
    // track of an execution it has.
    ports.starts.record_execution(&package, &execution_id).await?;
    ports.starts.record_start(&change.event_id, &execution_id).await?;
    let detail = json!({ "pipeline": config.pipeline, "execution_id": execution_id });
    ports.audit.append(&AuditEntry::now(&package, &change.event_id, AuditAction::PipelineStarted, detail)).await?;
    info!(event_id = %change.event_id, package = %package, execution_id, decision = "started", "start-deployment");
    Ok(StartOutcome::Started { package, execution_id })
}

/// Only versions this service promoted, and did not revoke, are deployed.
async fn check_promoted(ports: &DeployPorts, package: &ModelPackageArn) -> Result<(), StartError> {
    let central = ports.central_registry.describe_package(package).await?;
    let source: ModelPackageArn =
        central.customer_metadata.get(lineage::SOURCE_ARN).and_then(|raw| raw.parse().ok()).ok_or_else(|| StartError::NotPromoted(package.clone()))?;
    let record = ports.promotions.get(&source).await?.ok_or_else(|| StartError::NotPromoted(package.clone()))?;
    match record.state {
        _ if record.central_package.as_ref() != Some(package) => Err(StartError::NotPromoted(package.clone())),
        PromotionState::Promoted => Ok(()),
        PromotionState::Revoked => Err(StartError::Revoked(package.clone())),
        PromotionState::InProgress | PromotionState::RejectedInDev => Err(StartError::NotPromoted(package.clone())),
    }
}
