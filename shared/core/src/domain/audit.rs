//! The audit trail: one entry per event (or job) and action, only ever appended.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ids::ModelPackageArn;
use super::pipeline::PipelineState;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub source: ModelPackageArn,
    pub at: DateTime<Utc>,
    pub event_id: String,
    pub action: AuditAction,
    pub detail: Value,
}

impl AuditEntry {
    /// An entry of `package`'s trail written now. The ledger keys it on `event_id` (the job id,
    /// for a pipeline action) and `action`, so a redelivered event or job writes it once.
    pub fn now(package: &ModelPackageArn, event_id: &str, action: AuditAction, detail: Value) -> Self {
        Self { source: package.clone(), at: Utc::now(), event_id: event_id.to_owned(), action, detail }
    }
}

/// What an audit entry records. The ledger stores it as the string `Display` writes (and
/// `FromStr` reads back whatever is stored, one this code does not know as `Other`), so stored
/// trails and the CLI's history read as they always have.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum AuditAction {
    /// promote-model made the central version.
    Promoted,
    /// A dev rejection withdrew the central version.
    Revoked,
    /// A dev rejection came before any promotion.
    RejectedInDev,
    PipelineStarted,
    DeployStarted,
    /// The version runs in service on a stage's endpoint: where a rollback may go.
    Deployed,
    SilentRollback,
    DeployFailed,
    TestsPassed,
    TestsFailed,
    RejectedByTests,
    /// test-model returned the endpoint to what ran before the version it rejected.
    RolledBack,
    /// An operator's rollback, on the version rolled back from.
    RolledBackByOperator,
    /// An operator's rollback, on the version it put back in service: where a rollback may go.
    RestoredByOperator,
    AwaitingApproval,
    ProdApproved,
    ProdRejected,
    /// The DeployProd stage succeeded.
    ProdDeployed,
    /// A gate refused an action: the detail names the gate and the reason.
    Refused,
    /// A revocation rejected the prod approval that waited for the version.
    RevocationApprovalRejected,
    /// A revocation stopped an execution of the version that was still running.
    RevocationExecutionStopped,
    /// A revocation began to put a stage's endpoint back on an earlier version.
    RevocationRollbackStarted,
    /// A revocation took the version off a stage's endpoint, back to an earlier one.
    RevocationRolledBack,
    /// A revocation put this version back in service on a stage's endpoint: where a rollback may go.
    RestoredOnRevocation,
    /// A revocation deleted the test endpoint that ran the version, there being no earlier one.
    RevocationEndpointDeleted,
    /// The prod endpoint still runs the revoked version, there being no earlier one: people were told.
    RevocationStillServing,
    /// A revocation was asked for a version the ledger does not hold revoked.
    RevocationRefused,
    /// Any other state of the DeployProd stage: `prod-deploy-{state}`.
    ProdDeploy(PipelineState),
    /// Another action's state: `{stage}.{action}-{state}`.
    ActionState {
        stage: String,
        action: String,
        state: PipelineState,
    },
    /// The whole execution's state: `pipeline-{state}`.
    Pipeline(PipelineState),
    /// A stored action this code does not know.
    Other(String),
}

const PLAIN: [(AuditAction, &str); 27] = [
    (AuditAction::Promoted, "promoted"),
    (AuditAction::Revoked, "Revoked"),
    (AuditAction::RejectedInDev, "RejectedInDev"),
    (AuditAction::PipelineStarted, "pipeline-started"),
    (AuditAction::DeployStarted, "deploy-started"),
    (AuditAction::Deployed, "deployed"),
    (AuditAction::SilentRollback, "silent-rollback"),
    (AuditAction::DeployFailed, "deploy-failed"),
    (AuditAction::TestsPassed, "tests-passed"),
    (AuditAction::TestsFailed, "tests-failed"),
    (AuditAction::RejectedByTests, "rejected-by-tests"),
    (AuditAction::RolledBack, "rolled-back"),
    (AuditAction::RolledBackByOperator, "rolled-back-by-operator"),
    (AuditAction::RestoredByOperator, "restored-by-operator"),
    (AuditAction::AwaitingApproval, "awaiting-approval"),
    (AuditAction::ProdApproved, "prod-approved"),
    (AuditAction::ProdRejected, "prod-rejected"),
    (AuditAction::ProdDeployed, "prod-deployed"),
    (AuditAction::Refused, "refused"),
    (AuditAction::RevocationApprovalRejected, "revocation-approval-rejected"),
    (AuditAction::RevocationExecutionStopped, "revocation-execution-stopped"),
    (AuditAction::RevocationRollbackStarted, "revocation-rollback-started"),
    (AuditAction::RevocationRolledBack, "revocation-rolled-back"),
    (AuditAction::RestoredOnRevocation, "restored-on-revocation"),
    (AuditAction::RevocationEndpointDeleted, "revocation-endpoint-deleted"),
    (AuditAction::RevocationStillServing, "revocation-still-serving"),
    (AuditAction::RevocationRefused, "revocation-refused"),
];

impl AuditAction {
    /// A test run's verdict: what a governance officer reads before the prod approval.
    pub fn is_test_verdict(&self) -> bool {
        matches!(self, Self::TestsPassed | Self::TestsFailed)
    }

    /// The version ran in service on the entry's endpoint from then on.
    pub fn put_in_service(&self) -> bool {
        matches!(self, Self::Deployed | Self::RestoredByOperator | Self::RestoredOnRevocation)
    }

    /// A rollback put the version back: the versions that ran after it on the endpoint were
    /// rolled back from.
    pub fn returned_to(&self) -> bool {
        matches!(self, Self::RestoredByOperator | Self::RestoredOnRevocation)
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((_, name)) = PLAIN.iter().find(|(action, _)| action == self) {
            return f.pad(name);
        }
        match self {
            Self::ProdDeploy(state) => f.pad(&format!("prod-deploy-{}", state.lower())),
            Self::ActionState { stage, action, state } => f.pad(&format!("{stage}.{action}-{}", state.lower())),
            Self::Pipeline(state) => f.pad(&format!("pipeline-{}", state.lower())),
            Self::Other(raw) => f.pad(raw),
            plain => unreachable!("{plain:?} is in PLAIN"),
        }
    }
}

impl FromStr for AuditAction {
    type Err = std::convert::Infallible;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        if let Some((action, _)) = PLAIN.iter().find(|(_, name)| *name == raw) {
            return Ok(action.clone());
        }
        let structured = if let Some(state) = raw.strip_prefix("prod-deploy-") {
            Some(Self::ProdDeploy(PipelineState::parse(state)))
        } else if let Some(state) = raw.strip_prefix("pipeline-") {
            Some(Self::Pipeline(PipelineState::parse(state)))
        } else {
            raw.split_once('.')
                .and_then(|(stage, rest)| rest.rsplit_once('-').map(|(action, state)| (stage, action, state)))
                .map(|(stage, action, state)| Self::ActionState { stage: stage.to_owned(), action: action.to_owned(), state: PipelineState::parse(state) })
        };
        // Only a reading that writes the same string back is taken.
        Ok(structured.filter(|action| action == &raw).unwrap_or_else(|| Self::Other(raw.to_owned())))
    }
}

impl From<String> for AuditAction {
    fn from(raw: String) -> Self {
        Self::from(raw.as_str())
    }
}

impl From<&str> for AuditAction {
    fn from(raw: &str) -> Self {
        raw.parse().unwrap_or_else(|never| match never {})
    }
}

impl From<AuditAction> for String {
    fn from(action: AuditAction) -> String {
        action.to_string()
    }
}

impl PartialEq<&str> for AuditAction {
    fn eq(&self, other: &&str) -> bool {
        let shown = self.to_string();
        shown == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_is_stored_as_the_string_it_always_was_and_reads_back() {
        let stored = [
            "promoted",
            "Revoked",
            "RejectedInDev",
            "pipeline-started",
            "deploy-started",
            "deployed",
            "silent-rollback",
            "deploy-failed",
            "tests-passed",
            "tests-failed",
            "rejected-by-tests",
            "rolled-back",
            "rolled-back-by-operator",
            "restored-by-operator",
            "awaiting-approval",
            "prod-approved",
            "prod-rejected",
            "prod-deployed",
            "refused",
            "revocation-approval-rejected",
            "revocation-execution-stopped",
            "revocation-rollback-started",
            "revocation-rolled-back",
            "restored-on-revocation",
            "revocation-endpoint-deleted",
            "revocation-still-serving",
            "revocation-refused",
            "prod-deploy-failed",
            "prod-deploy-superseded",
            "DeployTest.DeployTest-succeeded",
            "Test.Model.v2-failed",
            "pipeline-succeeded",
            "pipeline-paused",
            "something-new",
        ];
        for raw in stored {
            let action: AuditAction = raw.parse().unwrap();
            assert_eq!(action.to_string(), raw);
            assert_eq!(serde_json::to_value(&action).unwrap(), serde_json::json!(raw));
            assert_eq!(serde_json::from_value::<AuditAction>(serde_json::json!(raw)).unwrap(), action);
        }
        assert_eq!("prod-deploy-failed".parse::<AuditAction>().unwrap(), AuditAction::ProdDeploy(PipelineState::Failed));
        assert_eq!("something-new".parse::<AuditAction>().unwrap(), AuditAction::Other("something-new".into()));
        assert_eq!(format!("{:<12}|", AuditAction::Deployed), "deployed    |");
    }
}
