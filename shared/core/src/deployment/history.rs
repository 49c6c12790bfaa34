//! A model's audit trail, for the CLI's `history`.

use crate::domain::audit::AuditEntry;
use crate::domain::ids::GroupName;
use crate::ports::{AuditTrail, PortResult, PromotionLedger};

/// The ordered audit trail of every version of `model` (a central group), dev and central. Only a
/// ledger call can fail: a `PortError` is this operation's error.
pub async fn history(promotions: &dyn PromotionLedger, trail: &dyn AuditTrail, model: &GroupName) -> PortResult<Vec<AuditEntry>> {
    let mut entries = Vec::new();
    for record in promotions.promotions().await?.into_iter().filter(|r| r.central_group.as_ref() == Some(model)) {
        entries.extend(trail.history(&record.source).await?);
        if let Some(central) = &record.central_package {
            entries.extend(trail.history(central).await?);
        }
    }
    entries.sort_by_key(|e| e.at);
    Ok(entries)
}
