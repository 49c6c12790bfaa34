//! promote-model's use case: a dev approval becomes one central version; a dev rejection revokes it.

mod copy;
mod error;
mod images;
mod outcome;
pub mod policy;
mod promote;
mod revoke;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tracing::info;

use crate::config::PromoteConfig;
use crate::domain::event::{ApprovalStatus, StateChange};
use crate::ports::PromotePorts;

pub use error::PromoteError;
pub use outcome::{Outcome, PromotionSummary};
pub use promote::PROMOTED_DETAIL_TYPE;

/// What the runtime tells about this invocation.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    /// No work of this invocation outlives it, so it bounds the claim's lease.
    pub deadline: DateTime<Utc>,
}

pub async fn handle_state_change(ports: &PromotePorts, config: &PromoteConfig, event: &Value, invocation: &Invocation) -> Result<Outcome, PromoteError> {
    let change = StateChange::parse(event)?;
    let allowed_buckets = policy::admit(config, &change)?;
    match change.status {
        ApprovalStatus::Approved => promote::Promotion { ports, config, change: &change, allowed_buckets, invocation }.run().await,
        ApprovalStatus::Rejected => revoke::revoke(ports, &change).await,
        ApprovalStatus::PendingManualApproval => {
            info!(event_id = %change.event_id, package = %change.package, decision = "ignored", "not an approval decision");
            Ok(Outcome::Ignored { source: change.package, reason: "status is PendingManualApproval".into() })
        }
    }
}
