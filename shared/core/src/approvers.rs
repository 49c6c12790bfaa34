//! Who approved at each gate, recorded against the version as the events that say so arrive, in
//! whatever order: the dev approval and the central approval from CloudTrail's record of
//! `UpdateModelPackage` (promote-model and start-deployment, the functions the central rules send
//! each registry's events to), the prod approval from CodePipeline's `updatedBy` (record-outcome).
//! What a gate reads back to hold separation of duties is [`approvers_of`].

use serde::Serialize;
use serde_json::Value;
use tracing::info;

use crate::config::PromoteConfig;
use crate::deployment::{DeployConfig, DeployPorts};
use crate::domain::cloudtrail::{ApprovalCall, CallError};
use crate::domain::identity::{Approver, Gate};
use crate::domain::ids::{AccountId, ModelPackageArn};
use crate::failure::Failure;
use crate::ports::{ApproverRecords, PortError, PortResult, PromotePorts, PromotionLedger};

/// Why an approver was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum ApproverError {
    #[error("invalid event: {0}")]
    InvalidEvent(#[from] CallError),
    #[error("account {0} is not an allow-listed source account")]
    UnknownAccount(AccountId),
    #[error("the event is from account {0}, not the central account")]
    NotCentral(AccountId),
    #[error(transparent)]
    Aws(#[from] PortError),
}

impl Failure for ApproverError {
    fn is_retryable(&self) -> bool {
        matches!(self, Self::Aws(port) if port.is_retryable())
    }

    fn name(&self) -> &'static str {
        match self {
            Self::InvalidEvent(_) => "InvalidEvent",
            Self::UnknownAccount(_) => "UnknownSourceAccount",
            Self::NotCentral(_) => "NotCentralAccount",
            Self::Aws(port) => port.name(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ApproverOutcome {
    /// The first record of who decided at this gate of the version.
    ApproverRecorded { approver: Approver },
    /// A record was there already (a redelivery, or a later approval of the same version): it stays.
    ApproverKept { package: ModelPackageArn, gate: Gate },
    /// The call approved nothing (another status, or it failed).
    Ignored { package: ModelPackageArn, reason: String },
}

/// A dev approval's CloudTrail record, forwarded from an allow-listed dev account: its approver,
/// recorded against the source version.
pub async fn record_dev_approver(ports: &PromotePorts, config: &PromoteConfig, event: &Value) -> Result<ApproverOutcome, ApproverError> {
    let call = ApprovalCall::parse(event)?;
    if !config.source_accounts.contains_key(&call.account) {
        return Err(ApproverError::UnknownAccount(call.account));
    }
    record_call(ports.approver_records.as_ref(), &call, Gate::DevApproval).await
}

/// A central approval's CloudTrail record, from the central account itself: its approver,
/// recorded against the central version.
pub async fn record_central_approver(ports: &DeployPorts, config: &DeployConfig, event: &Value) -> Result<ApproverOutcome, ApproverError> {
    let call = ApprovalCall::parse(event)?;
    if call.account != config.central_account {
        return Err(ApproverError::NotCentral(call.account));
    }
    record_call(ports.approver_records.as_ref(), &call, Gate::CentralApproval).await
}

async fn record_call(records: &dyn ApproverRecords, call: &ApprovalCall, gate: Gate) -> Result<ApproverOutcome, ApproverError> {
    let Some(approver) = call.approver(gate) else {
        let reason = match (&call.error_code, &call.status) {
            (Some(code), _) => format!("the call failed ({code})"),
            (None, Some(status)) => format!("the call set {}", status.as_str()),
            (None, None) => "the call set no approval status".to_owned(),
        };
        info!(event_id = %call.event_id, package = %call.package, gate = gate.as_str(), decision = "ignored", %reason, "approver");
        return Ok(ApproverOutcome::Ignored { package: call.package.clone(), reason });
    };
    Ok(record(records, approver).await?)
}

/// Records `approver` unless its version's gate has one.
pub async fn record(records: &dyn ApproverRecords, approver: Approver) -> PortResult<ApproverOutcome> {
    let written = records.record_approver(&approver).await?;
    let decision = if written { "approver-recorded" } else { "approver-kept" };
    info!(
        event_id = %approver.event_id,
        package = %approver.package,
        gate = approver.gate.as_str(),
        principal = approver.principal.as_deref().unwrap_or("none"),
        known = approver.normalised.is_known(),
        decision,
        "approver"
    );
    Ok(if written { ApproverOutcome::ApproverRecorded { approver } } else { ApproverOutcome::ApproverKept { package: approver.package, gate: approver.gate } })
}

/// Who approved a central version at each gate, as the ledger recorded it: the dev approval of
/// the source version it was promoted from, its central approval, its prod approval.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GateApprovers {
    /// `None` when the ledger knows no promotion of the version or no approver of its source yet.
    pub dev: Option<Approver>,
    pub central: Option<Approver>,
    pub prod: Option<Approver>,
}

impl GateApprovers {
    pub fn at(&self, gate: Gate) -> Option<&Approver> {
        match gate {
            Gate::DevApproval => self.dev.as_ref(),
            Gate::CentralApproval => self.central.as_ref(),
            Gate::ProdApproval => self.prod.as_ref(),
        }
    }
}

pub async fn approvers_of(promotions: &dyn PromotionLedger, records: &dyn ApproverRecords, central: &ModelPackageArn) -> PortResult<GateApprovers> {
    let source = promotions.promotion_of(central).await?.map(|record| record.source);
    let dev = match &source {
        Some(source) => records.approvers(source).await?.into_iter().find(|a| a.gate == Gate::DevApproval),
        None => None,
    };
    let mine = records.approvers(central).await?;
    let at = |gate: Gate| mine.iter().find(|a| a.gate == gate).cloned();
    Ok(GateApprovers { dev, central: at(Gate::CentralApproval), prod: at(Gate::ProdApproval) })
}

#[cfg(test)]
mod tests;
