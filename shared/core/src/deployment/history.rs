//! A model's audit trail, for the CLI's `history` and for the rollbacks that look back over it.

use crate::domain::audit::AuditEntry;
use crate::domain::ids::GroupName;
use crate::domain::ledger::PromotionRecord;
use crate::ports::{AuditTrail, PortResult, PromotionLedger};

/// The ordered audit trail of every version of `model` (a central group), dev and central. Only a
/// ledger call can fail: a `PortError` is this operation's error.
pub async fn history(promotions: &dyn PromotionLedger, trail: &dyn AuditTrail, model: &GroupName) -> PortResult<Vec<AuditEntry>> {
    trail_of(trail, &model_promotions(promotions, model).await?).await
}

/// The ledger's records of the promotions that made versions of `model`.
pub async fn model_promotions(promotions: &dyn PromotionLedger, model: &GroupName) -> PortResult<Vec<PromotionRecord>> {
    Ok(promotions.promotions().await?.into_iter().filter(|r| r.central_group.as_ref() == Some(model)).collect())
}

/// The ordered audit trail of the versions, dev and central, of `records`.
pub async fn trail_of(trail: &dyn AuditTrail, records: &[PromotionRecord]) -> PortResult<Vec<AuditEntry>> {
    let mut entries = Vec::new();
    for record in records {
        entries.extend(trail.history(&record.source).await?);
        if let Some(central) = &record.central_package {
            entries.extend(trail.history(central).await?);
        }
    }
    entries.sort_by_key(|e| e.at);
    Ok(entries)
}
