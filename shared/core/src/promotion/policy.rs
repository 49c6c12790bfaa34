//! The promotion policy, in one pure place (no I/O): which events are admitted, what a source
//! package must be, the claim and supersede rules the ledger applies atomically, what a held claim
//! means, and when a dev rejection is stale. The use cases around it only do I/O; the DynamoDB
//! adapter states the claim rule as a condition expression, and `CLAIM_CASES` holds both
//! statements of it to the same answers.

use crate::config::PromoteConfig;
use crate::domain::event::{ApprovalStatus, StateChange};
use crate::domain::ledger::{Claim, PromotionRecord, PromotionState};
use crate::domain::lineage::MAX_ARTIFACTS;
use crate::domain::package::RegisteredPackage;

use super::error::PromoteError;

/// The buckets the event's account may name: only allow-listed dev accounts are admitted.
pub fn admit<'a>(config: &'a PromoteConfig, change: &StateChange) -> Result<&'a [String], PromoteError> {
    config.source_accounts.get(&change.account).map(Vec::as_slice).ok_or_else(|| PromoteError::UnknownAccount(change.account.clone()))
}

/// What the dev registry says of the version must be what the event says, approved, deployable,
/// and its artifacts within the account's buckets.
pub fn check_source(change: &StateChange, package: &RegisteredPackage, allowed_buckets: &[String]) -> Result<(), PromoteError> {
    if package.arn != change.package {
        return Err(PromoteError::PackageMismatch { requested: change.package.clone(), described: package.arn.clone() });
    }
    if package.status != Some(ApprovalStatus::Approved) {
        let status = package.status.as_ref().map_or("no status", ApprovalStatus::as_str);
        return Err(PromoteError::NotApprovedInDev { package: package.arn.clone(), status });
    }
    if package.inference.containers.is_empty() {
        return Err(PromoteError::NoContainers(package.arn.clone()));
    }
    if package.artifacts.len() > MAX_ARTIFACTS {
        return Err(PromoteError::TooManyArtifacts(package.artifacts.len()));
    }
    if let Some(foreign) = package.artifacts.iter().find(|a| !allowed_buckets.iter().any(|b| b == a.uri.bucket())) {
        return Err(PromoteError::ForeignBucket { uri: foreign.uri.clone(), account: change.account.clone() });
    }
    Ok(())
}

/// The claim rule: granted when nobody holds the version, when the holder's lease ran out (its
/// invocation is dead), when the holder is this very claim (a retried call whose first answer was
/// lost), or when only an older dev rejection is recorded.
pub fn claim_granted(claim: &Claim, existing: Option<&PromotionRecord>) -> bool {
    match existing {
        None => true,
        Some(record) => match record.state {
            PromotionState::InProgress => record.owner.as_deref() == Some(claim.owner.as_str()) || record.lease_until.is_none_or(|lease| lease < claim.now),
            PromotionState::RejectedInDev => record.decided_at < claim.event_time,
            PromotionState::Promoted | PromotionState::Revoked => false,
        },
    }
}

/// A dev decision replaces what the ledger holds only when it is not older (events arrive out
/// of order; a redelivery has the same time), and never while a promotion runs.
pub fn decision_supersedes(existing: Option<&PromotionRecord>, decision: &PromotionRecord) -> bool {
    existing.is_none_or(|record| record.state != PromotionState::InProgress && record.decided_at <= decision.decided_at)
}

/// What a claim that is not granted means for the approval that asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    /// A redelivery of a finished promotion: its outcome is told again.
    Promoted,
    /// Another invocation works on it: a redelivery may find it done.
    InProgressElsewhere,
    /// Revoked in dev after its promotion: a new version must be approved.
    Revoked,
    /// A later dev rejection supersedes this approval.
    Superseded,
}

pub fn held(record: &PromotionRecord) -> Held {
    match record.state {
        PromotionState::Promoted => Held::Promoted,
        PromotionState::InProgress => Held::InProgressElsewhere,
        PromotionState::Revoked => Held::Revoked,
        PromotionState::RejectedInDev => Held::Superseded,
    }
}

/// What a dev rejection does, given what the ledger holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The ledger holds a newer decision: the rejection is ignored.
    Stale,
    /// A promotion runs: the rejection waits for a redelivery.
    WaitForPromotion,
    /// The version was promoted: its central copy is withdrawn.
    Withdraw,
    /// No promotion yet: the rejection is recorded so that an older approval cannot promote.
    Record,
}

pub fn rejection(existing: Option<&PromotionRecord>, change: &StateChange) -> Rejection {
    match existing {
        Some(record) if record.decided_at > change.time => Rejection::Stale,
        Some(record) if record.state == PromotionState::InProgress => Rejection::WaitForPromotion,
        Some(record) if record.central_package.is_some() => Rejection::Withdraw,
        _ => Rejection::Record,
    }
}

/// What the ledger holds of a source version before a claim, in a claim case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    Nothing,
    /// Claimed by `owner`, whose lease ends `lease_secs` after the claim's `now` (negative: lapsed).
    Claimed {
        owner: &'static str,
        lease_secs: i64,
    },
    /// Claimed by `owner`, who released it after a failure.
    Released {
        owner: &'static str,
    },
    /// Promoted, by a claim of an event `decided_secs` from the claim's `now`.
    Promoted {
        decided_secs: i64,
    },
    Revoked {
        decided_secs: i64,
    },
    RejectedInDev {
        decided_secs: i64,
    },
}

/// One case of the claim rule: what the ledger holds, a claim by `owner` for an event
/// `event_secs` from its `now`, and whether it is granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimCase {
    pub name: &'static str,
    pub existing: Existing,
    pub owner: &'static str,
    pub event_secs: i64,
    pub granted: bool,
}

const fn case(name: &'static str, existing: Existing, owner: &'static str, event_secs: i64, granted: bool) -> ClaimCase {
    ClaimCase { name, existing, owner, event_secs, granted }
}

/// The claim rule as a table, run against the fake ledger (core's tests) and against DynamoDB on
/// moto (`tests/it/claim_cases.rs`): the two statements of the rule cannot drift apart.
pub const CLAIM_CASES: &[ClaimCase] = &[
    case("a version nobody claimed", Existing::Nothing, "b", 0, true),
    case("a live claim of another invocation", Existing::Claimed { owner: "a", lease_secs: 300 }, "b", 0, false),
    case("a live claim retried by its own invocation", Existing::Claimed { owner: "a", lease_secs: 300 }, "a", 0, true),
    case("a claim whose lease lapsed", Existing::Claimed { owner: "a", lease_secs: -60 }, "b", 0, true),
    case("a claim released after a failure", Existing::Released { owner: "a" }, "b", 0, true),
    case("a promoted version, delivered again", Existing::Promoted { decided_secs: -60 }, "b", -60, false),
    case("a promoted version, by the invocation that promoted it", Existing::Promoted { decided_secs: -60 }, "a", -60, false),
    case("a revoked version", Existing::Revoked { decided_secs: -30 }, "b", 0, false),
    case("an approval newer than the dev rejection", Existing::RejectedInDev { decided_secs: -30 }, "b", 0, true),
    case("an approval older than the dev rejection", Existing::RejectedInDev { decided_secs: 30 }, "b", 0, false),
    case("an approval as old as the dev rejection", Existing::RejectedInDev { decided_secs: 0 }, "b", 0, false),
];
