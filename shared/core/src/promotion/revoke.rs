use serde_json::json;
use tracing::info;

use crate::domain::audit::{AuditAction, AuditEntry};
use crate::domain::event::{ApprovalStatus, StateChange};
use crate::domain::ledger::{PromotionRecord, PromotionState};
use crate::domain::lineage::REVOKED_BY;
use crate::domain::revocation::{ModelRevoked, REVOKED_DETAIL_TYPE};
use crate::ports::PromotePorts;

use super::error::PromoteError;
use super::outcome::Outcome;
use super::policy::{rejection, Rejection};

/// A rejection in dev withdraws the central copy and publishes `ModelRevoked` for what runs it,
/// or, before any promotion, bars older approvals.
pub(super) async fn revoke(ports: &PromotePorts, change: &StateChange) -> Result<Outcome, PromoteError> {
    let existing = ports.ledger.get(&change.package).await?;
    let log = |decision: &str| info!(event_id = %change.event_id, package = %change.package, decision, "revocation");
    let (outcome, record) = match (rejection(existing.as_ref(), change), existing) {
        (Rejection::Stale, Some(record)) => {
            log("stale");
            return Ok(Outcome::Ignored {
                source: change.package.clone(),
                reason: format!("the ledger holds a newer decision ({}, {})", record.state.as_str(), record.decided_at),
            });
        }
        (Rejection::WaitForPromotion, _) => return Err(PromoteError::InProgressElsewhere(change.package.clone())),
        (Rejection::Withdraw, Some(record)) => withdraw(ports, change, record).await?,
        _ => {
            let mut record = PromotionRecord::new(change.package.clone(), PromotionState::RejectedInDev, &change.event_id, change.time);
            record.reason = Some("rejected in dev before promotion".into());
            (Outcome::RejectionRecorded { source: change.package.clone() }, record)
        }
    };
    if !ports.ledger.record_decision(&record).await? {
        log("superseded");
        return Ok(Outcome::Ignored { source: change.package.clone(), reason: "a newer decision was recorded meanwhile".into() });
    }
    let entry = AuditEntry {
        source: change.package.clone(),
        at: change.time,
        event_id: change.event_id.clone(),
        action: if record.state == PromotionState::Revoked { AuditAction::Revoked } else { AuditAction::RejectedInDev },
        detail: json!({ "reason": record.reason, "central_package": record.central_package }),
    };
    ports.audit.append(&entry).await?;
    if let Outcome::Revoked { source, central_package, reason } = &outcome {
        // Last, and again on every redelivery: the reach of the revocation (the pipeline, the
        // endpoints) is record-outcome's, which repeats no step it did.
        let revoked = ModelRevoked {
            source_package: source.clone(),
            central_package: central_package.clone(),
            event_id: change.event_id.clone(),
            reason: reason.clone(),
        };
        ports.events.publish(REVOKED_DETAIL_TYPE, &serde_json::to_value(&revoked).expect("the event serializes")).await?;
    }
    log(record.state.as_str());
    Ok(outcome)
}

async fn withdraw(ports: &PromotePorts, change: &StateChange, mut record: PromotionRecord) -> Result<(Outcome, PromotionRecord), PromoteError> {
    let central = record.central_package.clone().ok_or_else(|| PromoteError::LedgerIncomplete(change.package.clone()))?;
    let reason =
        format!("Revoked: source version {} was rejected in dev account {} (event {} at {})", change.package, change.account, change.event_id, change.time);
    let package = ports.central_registry.describe_package(&central).await?;
    ports.central_registry.set_approval(&package, ApprovalStatus::Rejected, &reason, &[(REVOKED_BY, &change.event_id)]).await?;
    record.state = PromotionState::Revoked;
    record.event_id = change.event_id.clone();
    record.decided_at = change.time;
    record.reason = Some(reason.clone());
    Ok((Outcome::Revoked { source: change.package.clone(), central_package: central, reason }, record))
}
