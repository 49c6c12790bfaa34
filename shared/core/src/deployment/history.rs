//! A model's audit trail, for the CLI's `history` and for the rollbacks that look back over it.

use crate::domain::audit::AuditEntry;
use crate::domain::ids::GroupName;
use crate::domain::ledger::PromotionRecord;
use crate::ports::{AuditTrail, PortError, PortResult, PromotionLedger};

/// The audit trail of every version of `model` (a central group), dev and central: its chain, in
/// time order. Entries of one millisecond (the time's stored precision) keep their chain order.
/// Only the read can fail: a `PortError` is this operation's error.
pub async fn history(trail: &dyn AuditTrail, model: &GroupName) -> PortResult<Vec<AuditEntry>> {
    let chain = trail.chain(model).await?;
    let mut entries = chain.links.iter().map(|link| link.entry().map_err(PortError::from)).collect::<PortResult<Vec<_>>>()?;
    entries.sort_by_key(|e| e.at);
    Ok(entries)
}

/// The ledger's records of the promotions that made versions of `model`.
pub async fn model_promotions(promotions: &dyn PromotionLedger, model: &GroupName) -> PortResult<Vec<PromotionRecord>> {
    Ok(promotions.promotions().await?.into_iter().filter(|r| r.central_group.as_ref() == Some(model)).collect())
}
