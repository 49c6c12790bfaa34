//! Who decided at a gate: the principal CloudTrail or CodePipeline names, normalised so that two
//! decisions can be compared for separation of duties.
//!
//! An assumed-role session is its role plus the session's source identity: the session name is
//! whatever the caller chose and proves nothing, while a source identity, once set, survives role
//! chaining unchanged (and a role's trust policy can demand it, `sts:SourceIdentity`). An identity
//! that cannot be resolved is `Unknown`, and never compares as distinct from anything.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ids::{AccountId, ModelPackageArn};

/// The gates whose decisions are a person's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Gate {
    /// The lead data scientist's approval of the source version in the dev registry.
    DevApproval,
    /// The ML engineer's approval of the central version in the central registry.
    CentralApproval,
    /// The governance officer's answer to the pipeline's prod approval.
    ProdApproval,
}

impl Gate {
    pub const ALL: [Gate; 3] = [Gate::DevApproval, Gate::CentralApproval, Gate::ProdApproval];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::DevApproval => "DevApproval",
            Self::CentralApproval => "CentralApproval",
            Self::ProdApproval => "ProdApproval",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|gate| gate.as_str() == raw)
    }
}

/// A principal as the comparisons of separation of duties see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Principal {
    /// An IAM role, however it was assumed (`arn:aws:iam::ACCT:role/NAME`, its path dropped: role
    /// names are unique in an account), with the session's source identity when it had one.
    Role { arn: String, source_identity: Option<String> },
    /// An IAM user (`arn:aws:iam::ACCT:user/NAME`).
    User { arn: String },
    /// An account's root user (`arn:aws:iam::ACCT:root`).
    Root { arn: String },
    /// A federated user (`GetFederationToken`): the IAM user that minted it is the principal, since
    /// it may give the federated user any name. Without that user, nothing is known.
    FederatedUser { issuer: Option<String>, name: String },
    /// An AWS service acting on its own behalf: no person decided.
    Service { name: String },
    /// Not resolvable: `reason` says what was missing or malformed.
    Unknown { reason: String },
}

/// Whether two decisions were taken by different people, as far as their principals tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Distinct {
    Yes,
    No,
    /// At least one side is not a resolvable person, or the principals cannot be told apart nor
    /// together (one role, a source identity on one side only).
    Unknown,
}

impl Principal {
    /// The principal a CloudTrail record's `userIdentity` names.
    pub fn from_user_identity(identity: Option<&Value>) -> Self {
        let Some(identity) = identity.filter(|i| i.is_object()) else {
            return unknown("no userIdentity");
        };
        let text = |pointer: &str| text_at(identity, pointer);
        match text("/type").as_deref() {
            Some("AssumedRole") => assumed_role(text("/arn").as_deref(), text("/sessionContext/sessionIssuer/arn").as_deref(), source_identity(identity)),
            Some("IAMUser") => text("/arn").map_or_else(|| unknown("an IAMUser without arn"), |arn| Self::from_arn(&arn)),
            Some("Root") => match (text("/arn"), text("/accountId")) {
                (Some(arn), _) => Self::from_arn(&arn),
                (None, Some(account)) => Self::from_arn(&format!("arn:aws:iam::{account}:root")),
                (None, None) => unknown("a Root identity without arn or accountId"),
            },
            Some("FederatedUser") => federated(text("/arn").as_deref(), text("/sessionContext/sessionIssuer/arn").as_deref()),
            Some("AWSService") => match text("/invokedBy") {
                Some(name) => Self::Service { name },
                None => unknown("an AWSService identity without invokedBy"),
            },
            Some(other) => unknown(&format!("userIdentity type {other} names no principal this service can compare")),
            None => unknown("userIdentity without type"),
        }
    }

    /// The principal an ARN names: CodePipeline's `updatedBy`, or STS `GetCallerIdentity`'s `Arn`.
    pub fn from_arn(raw: &str) -> Self {
        let Some(arn) = Arn::parse(raw) else {
            return unknown(&format!("`{}` is not an IAM or STS principal ARN", super::ids::truncated(raw)));
        };
        match (arn.service, arn.kind, arn.rest.as_slice()) {
            ("sts", "assumed-role", [role, _session]) => Self::Role { arn: arn.iam("role", role), source_identity: None },
            ("iam", "role", [.., role]) => Self::Role { arn: arn.iam("role", role), source_identity: None },
            ("iam", "user", [.., user]) => Self::User { arn: arn.iam("user", user) },
            ("iam", "root", []) => Self::Root { arn: format!("arn:{}:iam::{}:root", arn.partition, arn.account) },
            ("sts", "federated-user", [name]) => Self::FederatedUser { issuer: None, name: (*name).to_owned() },
            _ => unknown(&format!("`{}` is not an IAM or STS principal ARN", super::ids::truncated(raw))),
        }
    }

    /// The IAM principal compared, lowercased (IAM names are unique regardless of case); `None`
    /// when there is no resolvable one.
    fn key(&self) -> Option<String> {
        match self {
            Self::Role { arn, .. } | Self::User { arn } | Self::Root { arn } => Some(arn.to_lowercase()),
            Self::FederatedUser { issuer, .. } => issuer.as_ref().map(|arn| arn.to_lowercase()),
            Self::Service { .. } | Self::Unknown { .. } => None,
        }
    }

    /// The person behind the principal as far as it says: a role session's source identity, an
    /// IAM user's name.
    fn person(&self) -> Option<String> {
        match self {
            Self::Role { source_identity, .. } => source_identity.as_ref().map(|si| si.to_lowercase()),
            Self::User { arn } => arn.rsplit('/').next().map(str::to_lowercase),
            _ => None,
        }
    }

    /// Whether `self` and `other` are different people. The same person (source identity or user
    /// name, compared without case) is `No` whatever the roles or accounts; two different source
    /// identities are `Yes` even on one role; one role with a source identity on one side only is
    /// `Unknown`; otherwise the principals decide.
    pub fn distinct_from(&self, other: &Principal) -> Distinct {
        let (Some(mine), Some(theirs)) = (self.key(), other.key()) else {
            return Distinct::Unknown;
        };
        match (self.person(), other.person()) {
            (Some(a), Some(b)) if a == b => Distinct::No,
            (Some(_), Some(_)) => Distinct::Yes,
            (None, None) if mine == theirs => Distinct::No,
            (_, _) if mine == theirs => Distinct::Unknown,
            _ => Distinct::Yes,
        }
    }

    pub fn is_known(&self) -> bool {
        self.key().is_some()
    }
}

fn unknown(reason: &str) -> Principal {
    Principal::Unknown { reason: reason.to_owned() }
}

/// A non-empty string at `pointer`.
fn text_at(value: &Value, pointer: &str) -> Option<String> {
    value.pointer(pointer).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// CloudTrail puts an assumed role's source identity in its session context; some records carry
/// it on the identity itself.
fn source_identity(identity: &Value) -> Option<String> {
    text_at(identity, "/sessionContext/sourceIdentity").or_else(|| text_at(identity, "/sourceIdentity"))
}

fn assumed_role(session: Option<&str>, issuer: Option<&str>, source_identity: Option<String>) -> Principal {
    let role_of = |arn: Option<&str>| arn.map(Principal::from_arn);
    let role = match (role_of(session), role_of(issuer)) {
        (Some(from_session @ Principal::Role { .. }), Some(from_issuer @ Principal::Role { .. })) if from_session != from_issuer => {
            return unknown("the session's role and its issuer differ");
        }
        (Some(role @ Principal::Role { .. }), _) | (_, Some(role @ Principal::Role { .. })) => role,
        _ => return unknown("an AssumedRole identity without a role ARN"),
    };
    match role {
        Principal::Role { arn, .. } => Principal::Role { arn, source_identity },
        other => other,
    }
}

fn federated(arn: Option<&str>, issuer: Option<&str>) -> Principal {
    let name = match arn.map(Principal::from_arn) {
        Some(Principal::FederatedUser { name, .. }) => name,
        _ => return unknown("a FederatedUser identity without a federated-user ARN"),
    };
    match issuer.map(Principal::from_arn) {
        Some(Principal::User { arn }) => Principal::FederatedUser { issuer: Some(arn), name },
        _ => Principal::FederatedUser { issuer: None, name },
    }
}

/// The parts of `arn:PARTITION:SERVICE::ACCOUNT:KIND[/REST...]` a principal ARN has.
struct Arn<'a> {
    partition: &'a str,
    service: &'a str,
    account: AccountId,
    kind: &'a str,
    rest: Vec<&'a str>,
}

impl<'a> Arn<'a> {
    fn parse(raw: &'a str) -> Option<Self> {
        let mut fields = raw.trim().splitn(6, ':');
        let (prefix, partition, service, region, account, resource) =
            (fields.next()?, fields.next()?, fields.next()?, fields.next()?, fields.next()?, fields.next()?);
        if prefix != "arn" || !partition.starts_with("aws") || !matches!(service, "iam" | "sts") || !region.is_empty() {
            return None;
        }
        let mut path = resource.split('/');
        let kind = path.next()?;
        let rest: Vec<&str> = path.collect();
        if rest.iter().any(|part| part.is_empty()) {
            return None;
        }
        Some(Self { partition, service, account: account.parse().ok()?, kind, rest })
    }

    fn iam(&self, kind: &str, name: &str) -> String {
        format!("arn:{}:iam::{}:{kind}/{name}", self.partition, self.account)
    }
}

/// Who decided at one gate of one version, as the ledger records it (once per version and gate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approver {
    pub gate: Gate,
    /// The version decided on: the source version for the dev approval, the central version for
    /// the central and the prod approvals.
    pub package: ModelPackageArn,
    /// The principal as its source named it: CloudTrail's `userIdentity.arn`, CodePipeline's
    /// `updatedBy`; `None` when it named none.
    pub principal: Option<String>,
    pub normalised: Principal,
    /// When the decision was taken (the API call's time, or the approval's state change).
    pub at: DateTime<Utc>,
    /// CloudTrail's `eventID` of the call, or the id of the pipeline event that reported it.
    pub event_id: String,
}

impl Approver {
    /// The governance officer of the prod approval, as CodePipeline's `updatedBy` names them.
    pub fn prod(package: &ModelPackageArn, updated_by: Option<&str>, at: DateTime<Utc>, event_id: &str) -> Self {
        let normalised = updated_by.map_or_else(|| unknown("CodePipeline named no updatedBy"), Principal::from_arn);
        Self { gate: Gate::ProdApproval, package: package.clone(), principal: updated_by.map(str::to_owned), normalised, at, event_id: event_id.to_owned() }
    }
}

/// Whether the decisions of `a` and `b` were taken by different people (see
/// [`Principal::distinct_from`]): `Rejected.SameApprover` unless `Yes`.
pub fn distinct(a: &Approver, b: &Approver) -> Distinct {
    a.normalised.distinct_from(&b.normalised)
}

#[cfg(test)]
#[path = "identity_tests.rs"]
mod tests;
