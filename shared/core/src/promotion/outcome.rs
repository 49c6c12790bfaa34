use serde::Serialize;

use crate::domain::ids::{GroupName, ModelPackageArn};
use crate::domain::ledger::CopiedArtifact;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Promoted(PromotionSummary),
    /// A redelivery of an event already handled: nothing new was made.
    AlreadyPromoted(PromotionSummary),
    Revoked {
        source: ModelPackageArn,
        central_package: ModelPackageArn,
        reason: String,
    },
    /// Rejected in dev before any promotion: recorded so that an older approval cannot promote it.
    RejectionRecorded {
        source: ModelPackageArn,
    },
    Ignored {
        source: ModelPackageArn,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PromotionSummary {
    pub source: ModelPackageArn,
    pub event_id: String,
    pub central_group: GroupName,
    pub central_package: ModelPackageArn,
    pub artifacts: Vec<CopiedArtifact>,
    pub model_card: String,
    pub model_card_version: u32,
}
