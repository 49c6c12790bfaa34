//! What the ledger remembers of each source version: the claim, the progress, the outcome.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::fingerprint::ReleaseFingerprint;
use super::ids::{GroupName, ModelPackageArn, S3Uri, Stage};
use super::package::ArtifactSlot;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PromotionState {
    /// An invocation holds the claim until `lease_until`.
    InProgress,
    Promoted,
    /// Rejected in dev after promotion: the central version is marked Rejected.
    Revoked,
    /// Rejected in dev before any promotion: an older approval must not promote it.
    RejectedInDev,
}

impl PromotionState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "InProgress",
            Self::Promoted => "Promoted",
            Self::Revoked => "Revoked",
            Self::RejectedInDev => "RejectedInDev",
        }
    }
    pub fn parse(raw: &str) -> Option<Self> {
        [Self::InProgress, Self::Promoted, Self::Revoked, Self::RejectedInDev].into_iter().find(|s| s.as_str() == raw)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopiedArtifact {
    pub slot: ArtifactSlot,
    pub source: S3Uri,
    pub central: S3Uri,
    pub size: u64,
    pub sha256: String,
    pub content_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PromotionRecord {
    pub source: ModelPackageArn,
    pub state: PromotionState,
    pub event_id: String,
    pub owner: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
    /// The time of the dev decision (event time) this record reflects.
    pub decided_at: DateTime<Utc>,
    pub central_group: Option<GroupName>,
    pub artifacts: Vec<CopiedArtifact>,
    /// How many deliveries have claimed the version: past the first, an earlier holder may have
    /// left copies, uploads or a central version behind, so the promotion looks for them first.
    pub claims: u32,
    pub central_package: Option<ModelPackageArn>,
    pub card_version: Option<u32>,
    pub promoted_at: Option<DateTime<Utc>>,
    pub reason: Option<String>,
    /// What the central version runs, as promoted: every stage deployment must find it again.
    pub fingerprint: Option<ReleaseFingerprint>,
}

impl PromotionRecord {
    pub fn new(source: ModelPackageArn, state: PromotionState, event_id: &str, decided_at: DateTime<Utc>) -> Self {
        Self {
            source,
            state,
            event_id: event_id.to_owned(),
            owner: None,
            lease_until: None,
            decided_at,
            central_group: None,
            artifacts: Vec::new(),
            claims: 0,
            central_package: None,
            card_version: None,
            promoted_at: None,
            reason: None,
            fingerprint: None,
        }
    }
}

/// A conditional claim on a source version; `promotion::policy::claim_granted` says when it is granted.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    pub source: ModelPackageArn,
    pub event_id: String,
    pub event_time: DateTime<Utc>,
    pub owner: String,
    pub lease_until: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClaimResult {
    /// The claim is ours; the record carries any progress of an earlier, dead attempt.
    Granted(PromotionRecord),
    Held(PromotionRecord),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeploymentState {
    Deploying,
    InService,
    Failed,
    RolledBack,
}

/// What a stage's endpoint runs, and what it ran before: where a rollback goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentRecord {
    pub stage: Stage,
    pub endpoint: String,
    pub package: ModelPackageArn,
    pub config: String,
    pub state: DeploymentState,
    pub previous_config: Option<String>,
    pub previous_package: Option<ModelPackageArn>,
    pub at: DateTime<Utc>,
}

/// A claim on starting the pipeline for one approval event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartClaim {
    Granted,
    Started {
        execution_id: String,
    },
    /// Another invocation is starting it now.
    Busy,
}

/// What test-model recorded of one run of a stage's tests in one execution: the ledger's word
/// that a version passed, which no continuation token or event can stand in for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestRecord {
    pub execution_id: String,
    pub package: ModelPackageArn,
    pub stage: Stage,
    /// The release the tests ran against.
    pub fingerprint: ReleaseFingerprint,
    pub passed: bool,
    /// The job that ran the cases and wrote this record.
    pub job_id: String,
    pub report: S3Uri,
    /// The report object's version (a bucket under Object Lock keeps every version).
    pub report_version: Option<String>,
    pub report_sha256: String,
    pub at: DateTime<Utc>,
}
