//! A person acting through the CLI (`promote rollback`, `approve`, `reject`, `invoke`): who STS
//! says they are, and how the role sessions the service assumes on their behalf carry it, so
//! that CloudTrail in the stage accounts tells an operator's call from a function's.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::identity::Principal;

/// STS's bounds on `RoleSessionName` and `SourceIdentity` (both `[\w+=,.@-]`, 2 to 64 characters).
const STS_NAME_MIN: usize = 2;
const STS_NAME_MAX: usize = 64;
/// Marks an operator's session among the functions' (`model-promotion`) in CloudTrail.
const SESSION_PREFIX: &str = "op-";

/// The operator, from STS `GetCallerIdentity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operator {
    /// `GetCallerIdentity`'s `Arn`, as STS gave it.
    pub arn: String,
    pub principal: Principal,
    /// The role session name of the sessions assumed on the operator's behalf.
    pub session_name: String,
    /// The source identity those sessions carry (unchangeable for the session and its chain).
    pub source_identity: String,
}

impl Operator {
    /// The operator whose credentials STS resolves to `arn`.
    pub fn from_caller_arn(arn: &str) -> Self {
        let name = person_name(arn);
        Self {
            arn: arn.to_owned(),
            principal: Principal::from_arn(arn),
            session_name: sts_name(&format!("{SESSION_PREFIX}{name}")),
            source_identity: sts_name(&name),
        }
    }

    /// What an audit entry written by the operator's action records of them.
    pub fn audit_detail(&self) -> Value {
        json!({ "arn": self.arn, "principal": self.principal, "source_identity": self.source_identity })
    }
}

/// The person in a principal ARN: an assumed role's session name (what an identity provider sets
/// to the user's name), a user's or federated user's name; the whole ARN otherwise.
fn person_name(arn: &str) -> String {
    let resource = arn.splitn(6, ':').nth(5).unwrap_or(arn);
    let parts: Vec<&str> = resource.split('/').collect();
    match parts.as_slice() {
        ["assumed-role", _role, session] => (*session).to_owned(),
        ["user" | "federated-user", .., name] => (*name).to_owned(),
        ["root"] => format!("root-{}", arn.split(':').nth(4).unwrap_or_default()),
        _ => arn.to_owned(),
    }
}

/// `raw` in STS's character set (others become `-`), cut to 64 characters, padded to 2.
pub fn sts_name(raw: &str) -> String {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c);
    let mut name: String = raw.chars().map(|c| if allowed(c) { c } else { '-' }).take(STS_NAME_MAX).collect();
    while name.len() < STS_NAME_MIN {
        name.push('-');
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assumed_role_operator_is_named_by_their_session_and_the_role_is_the_principal() {
        let operator = Operator::from_caller_arn("arn:aws:sts::222222222222:assumed-role/AWSReservedSSO_MLOps_0f1e/alice@example.com");
        assert_eq!(operator.session_name, "op-alice@example.com");
        assert_eq!(operator.source_identity, "alice@example.com");
        assert_eq!(operator.principal, Principal::Role { arn: "arn:aws:iam::222222222222:role/AWSReservedSSO_MLOps_0f1e".into(), source_identity: None });
    }

    #[test]
    fn users_root_and_odd_arns_give_names_sts_takes() {
        let cases = [
            ("arn:aws:iam::222222222222:user/ops/bob", "op-bob", "bob"),
            ("arn:aws:iam::222222222222:root", "op-root-222222222222", "root-222222222222"),
            ("arn:aws:sts::222222222222:federated-user/carol", "op-carol", "carol"),
            ("arn:aws:sts::222222222222:assumed-role/Ops/a", "op-a", "a-"),
            ("not an arn: é/ü", "op-not-an-arn-----", "not-an-arn-----"),
        ];
        for (arn, session, source) in cases {
            let operator = Operator::from_caller_arn(arn);
            assert_eq!((operator.session_name.as_str(), operator.source_identity.as_str()), (session, source), "{arn}");
        }
    }

    #[test]
    fn a_long_name_is_cut_to_sixty_four_characters_of_the_sts_charset() {
        let arn = format!("arn:aws:sts::222222222222:assumed-role/Ops/{}", "x".repeat(64));
        let operator = Operator::from_caller_arn(&arn);
        assert_eq!(operator.session_name.len(), 64);
        assert_eq!(operator.source_identity, "x".repeat(64));
        let allowed = |c: char| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c);
        assert!(sts_name("a b/c:d*é").chars().all(allowed), "{}", sts_name("a b/c:d*é"));
    }
}
