//! The audit trail as one hash chain per model: each entry carries its sequence number, the hash
//! of the entry before it in the same model's chain and its own hash, so that rewriting,
//! removing or moving any entry breaks the chain where it happened.
//!
//! A model is its central group: the entries of a dev version and those of the central version
//! promoted from it fall in one chain ([`chain_model`]).
//!
//! The hash is SHA-256 over a canonical form of the entry *as stored*: the version tag, then the
//! model, seq, previous hash, package, event id, action, time and detail, each as a netstring
//! (`{byte length}:{bytes},`). The detail is hashed as the JSON text stored, never re-serialized,
//! so verification does not depend on a JSON library's key order or number formatting, and a
//! verifier in another language needs nothing but SHA-256.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::audit::AuditEntry;
use super::ids::{AccountId, GroupName, ModelPackageArn};
use super::naming::{central_group_name, hex_sha256};

/// Names the canonical form, so that a later form can never be mistaken for this one.
const FORM: &str = "promote-audit-chain/1";

/// The `previous` of a chain's first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The chain an entry of `package` belongs to: a central version's own group, or, for a dev
/// version, the central group it is (or would be) promoted into.
pub fn chain_model(package: &ModelPackageArn, central_account: &AccountId) -> GroupName {
    if package.account() == central_account {
        package.group().clone()
    } else {
        central_group_name(package)
    }
}

/// How many times an append reads the head and tries to chain its entry to it: each lost race
/// (another writer advanced the head first) costs one. Past the bound, the append fails
/// retryable and the delivery is retried.
pub const CHAIN_ATTEMPTS: u32 = 10;

/// The wait before the `retry`-th retry of an append that lost the race: full jitter (`jitter`
/// in [0, 1)) over 10 ms doubling per retry, at most 640 ms, so that racing writers spread out.
pub fn race_backoff(retry: u32, jitter: f64) -> Duration {
    let ceiling = 10u64 << retry.clamp(1, 7).saturating_sub(1);
    Duration::from_secs_f64(ceiling as f64 * jitter.clamp(0.0, 1.0) / 1000.0)
}

/// An entry's content as stored: the strings the hash covers, read back verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    pub package: String,
    pub event_id: String,
    pub action: String,
    /// RFC 3339, milliseconds, UTC (`2026-11-29T22:42:50.760Z`).
    pub at: String,
    /// The detail's JSON text.
    pub detail: String,
}

impl Recorded {
    pub fn of(entry: &AuditEntry) -> Self {
        Self {
            package: entry.source.to_string(),
            event_id: entry.event_id.clone(),
            action: entry.action.to_string(),
            at: entry.at.to_rfc3339_opts(SecondsFormat::Millis, true),
            detail: entry.detail.to_string(),
        }
    }

    /// The entry back, `None` when what is stored no longer reads as one.
    pub fn entry(&self) -> Option<AuditEntry> {
        Some(AuditEntry {
            source: self.package.parse().ok()?,
            at: DateTime::parse_from_rfc3339(&self.at).ok()?.with_timezone(&Utc),
            event_id: self.event_id.clone(),
            action: self.action.as_str().into(),
            detail: serde_json::from_str(&self.detail).ok()?,
        })
    }

    /// What makes an entry the same entry again: a redelivery repeats these.
    pub fn identity(&self) -> (&str, &str, &str) {
        (&self.package, &self.event_id, &self.action)
    }
}

/// One entry of a chain as stored. `position` is where the store keeps it (the sort key), `seq`
/// what the entry itself records: the two differ only when an entry was moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub position: u64,
    pub seq: u64,
    pub model: String,
    pub previous: String,
    pub hash: String,
    pub recorded: Recorded,
}

/// The record, written with each entry in the same transaction under a key of its own, that the
/// entry of a package, event and action was chained at `seq`: what a redelivery is recognised
/// by, and a second witness of the chain. An entry removed or replaced, even with the head moved
/// back to hide it, leaves its identity behind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub package: String,
    pub event_id: String,
    pub action: String,
    pub seq: u64,
}

impl Identity {
    pub fn of(link: &Link) -> Self {
        let recorded = &link.recorded;
        Self { package: recorded.package.clone(), event_id: recorded.event_id.clone(), action: recorded.action.clone(), seq: link.seq }
    }

    fn names(&self) -> (&str, &str, &str) {
        (&self.package, &self.event_id, &self.action)
    }
}

/// The newest entry of a chain: what the next entry links to. Absent before the first entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
}

impl Head {
    /// Where a chain without entries stands.
    pub fn genesis() -> Self {
        Self { seq: 0, hash: GENESIS.to_owned() }
    }

    /// The entry that extends the chain from this head, and the head after it.
    pub fn next(&self, model: &GroupName, recorded: Recorded) -> (Link, Head) {
        let seq = self.seq + 1;
        let hash = link_hash(model.as_str(), seq, &self.hash, &recorded);
        let link = Link { position: seq, seq, model: model.as_str().to_owned(), previous: self.hash.clone(), hash: hash.clone(), recorded };
        (link, Head { seq, hash })
    }
}

/// A model's chain as the store holds it: its entries in position order, its head, and the
/// identities recorded with its entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredChain {
    pub links: Vec<Link>,
    pub head: Option<Head>,
    pub identities: Vec<Identity>,
}

/// What is stored no longer reads as an entry: `promote audit verify` says what happened to it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the audit entry at seq {seq} of {model} is unreadable")]
pub struct UnreadableEntry {
    pub model: String,
    pub seq: u64,
}

impl Link {
    pub fn entry(&self) -> Result<AuditEntry, UnreadableEntry> {
        self.recorded.entry().ok_or_else(|| UnreadableEntry { model: self.model.clone(), seq: self.position })
    }
}

/// SHA-256, lower-case hex, of the canonical form of an entry.
pub fn link_hash(model: &str, seq: u64, previous: &str, recorded: &Recorded) -> String {
    let seq = seq.to_string();
    let fields = [FORM, model, &seq, previous, &recorded.package, &recorded.event_id, &recorded.action, &recorded.at, &recorded.detail];
    let form: String = fields.iter().map(|field| format!("{}:{field},", field.len())).collect();
    hex_sha256(form.as_bytes())
}

/// What is wrong at the first broken link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Break {
    /// The entry's content no longer hashes to the hash stored with it.
    Rewritten,
    /// Entries `seq..=through` are missing: removed from the chain.
    Removed { through: u64 },
    /// The entry stored at this seq records another seq: entries were moved.
    Reordered { recorded_seq: u64 },
    /// The entry does not link to the entry before it: that one was replaced (and rehashed), or
    /// this one was moved here from elsewhere in the chain.
    Unlinked,
    /// The entry names another model's chain.
    Misplaced { recorded_model: String },
    /// The entry repeats an earlier entry's package, event and action: chained twice.
    Duplicate { first: u64 },
    /// The chain's head is missing though entries are stored.
    HeadMissing,
    /// The head's hash is not the last entry's: the last entry (or the head) was rewritten.
    HeadMismatch,
    /// Entries follow the head: appended without advancing it.
    BeyondHead { head: u64 },
    /// The entry recorded as chained here is not: it was removed or replaced.
    Lost { package: String, event_id: String, action: String },
    /// No identity was recorded with the entry: it was not appended by the service.
    Unrecorded,
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rewritten => f.write_str("rewritten: its content no longer matches its hash"),
            Self::Removed { through } => write!(f, "removed: no entry is stored from here through seq {through}"),
            Self::Reordered { recorded_seq } => write!(f, "reordered: the entry stored here records seq {recorded_seq}"),
            Self::Unlinked => f.write_str("unlinked: its previous hash is not the hash of the entry before it (that one was replaced, or this one moved)"),
            Self::Misplaced { recorded_model } => write!(f, "misplaced: the entry belongs to the chain of {recorded_model}"),
            Self::Duplicate { first } => write!(f, "chained twice: it repeats the entry at seq {first}"),
            Self::HeadMissing => f.write_str("the chain's head is missing"),
            Self::HeadMismatch => f.write_str("the head's hash is not this entry's: this entry or the head was rewritten"),
            Self::BeyondHead { head } => write!(f, "appended past the head (seq {head}) without advancing it"),
            Self::Lost { package, event_id, action } => {
                write!(f, "lost: the {action} entry of {package} (event {event_id}) was chained here and is gone or replaced")
            }
            Self::Unrecorded => f.write_str("unrecorded: no identity was written with this entry, so the service did not append it"),
        }
    }
}

/// The first broken link of a model's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{model}: seq {seq}: {what}")]
pub struct BrokenLink {
    pub model: GroupName,
    pub seq: u64,
    pub what: Break,
}

/// A chain that verified: how many entries, and its head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verified {
    pub entries: u64,
    pub head: Head,
}

/// Checks a model's chain: walks its entries (in position order) from the genesis, each against
/// the one before it, then the last against the head; then each recorded identity against the
/// entry at its seq, and each entry against its identity. Names the first broken link.
pub fn verify(model: &GroupName, chain: &StoredChain) -> Result<Verified, BrokenLink> {
    let verified = walk(model, &chain.links, chain.head.as_ref())?;
    witnesses(&chain.links, &chain.identities).map_err(|(seq, what)| BrokenLink { model: model.clone(), seq, what })?;
    Ok(verified)
}

fn walk(model: &GroupName, links: &[Link], head: Option<&Head>) -> Result<Verified, BrokenLink> {
    let broken = |seq: u64, what: Break| BrokenLink { model: model.clone(), seq, what };
    let mut reached = Head::genesis();
    let mut seen: HashMap<(&str, &str, &str), u64> = HashMap::new();
    for link in links {
        let expected = reached.seq + 1;
        if link.position > expected {
            return Err(broken(expected, Break::Removed { through: link.position - 1 }));
        }
        if link.position < expected {
            // The store holds two entries at one position: the second was moved there.
            return Err(broken(link.position, Break::Reordered { recorded_seq: link.seq }));
        }
        if link.seq != link.position {
            return Err(broken(link.position, Break::Reordered { recorded_seq: link.seq }));
        }
        if link.model != model.as_str() {
            return Err(broken(link.seq, Break::Misplaced { recorded_model: link.model.clone() }));
        }
        if link.hash != link_hash(&link.model, link.seq, &link.previous, &link.recorded) {
            return Err(broken(link.seq, Break::Rewritten));
        }
        if link.previous != reached.hash {
            return Err(broken(link.seq, Break::Unlinked));
        }
        if let Some(first) = seen.insert(link.recorded.identity(), link.seq) {
            return Err(broken(link.seq, Break::Duplicate { first }));
        }
        reached = Head { seq: link.seq, hash: link.hash.clone() };
    }
    match head {
        None if reached.seq == 0 => Ok(Verified { entries: 0, head: reached }),
        None => Err(broken(reached.seq, Break::HeadMissing)),
        Some(head) if head.seq > reached.seq => Err(broken(reached.seq + 1, Break::Removed { through: head.seq })),
        Some(head) if head.seq < reached.seq => Err(broken(head.seq + 1, Break::BeyondHead { head: head.seq })),
        Some(head) if head.hash != reached.hash => Err(broken(reached.seq, Break::HeadMismatch)),
        Some(_) => Ok(Verified { entries: reached.seq, head: reached }),
    }
}

/// Each identity names the entry at its seq, and each entry has its identity: the lowest seq
/// where one of them does not.
fn witnesses(links: &[Link], identities: &[Identity]) -> Result<(), (u64, Break)> {
    let chained: HashMap<u64, (&str, &str, &str)> = links.iter().map(|link| (link.seq, link.recorded.identity())).collect();
    let recorded: HashMap<(&str, &str, &str), u64> = identities.iter().map(|identity| (identity.names(), identity.seq)).collect();
    let lost = identities.iter().filter(|identity| chained.get(&identity.seq) != Some(&identity.names())).map(|identity| {
        (identity.seq, Break::Lost { package: identity.package.clone(), event_id: identity.event_id.clone(), action: identity.action.clone() })
    });
    let unrecorded = links.iter().filter(|link| recorded.get(&link.recorded.identity()) != Some(&link.seq)).map(|link| (link.seq, Break::Unrecorded));
    match lost.chain(unrecorded).min_by_key(|(seq, _)| *seq) {
        Some(first) => Err(first),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::audit::AuditAction;

    const CENTRAL: &str = "222222222222";

    fn model() -> GroupName {
        "churn-111111111111".parse().unwrap()
    }

    fn entry(package: &str, event: &str, action: AuditAction) -> AuditEntry {
        let at = DateTime::parse_from_rfc3339("2026-11-29T22:42:50.760Z").unwrap().with_timezone(&Utc);
        AuditEntry { source: package.parse().unwrap(), at, event_id: event.into(), action, detail: json!({ "b": 1, "a": [0.83, "x"] }) }
    }

    const DEV: &str = "arn:aws:sagemaker:us-east-1:111111111111:model-package/churn/3";
    const CENTRAL_V1: &str = "arn:aws:sagemaker:us-east-1:222222222222:model-package/churn-111111111111/1";

    /// A chain of `n` entries, and its head.
    fn chain(n: u64) -> (Vec<Link>, Head) {
        let mut head = Head::genesis();
        let mut links = Vec::new();
        for i in 1..=n {
            let package = if i == 1 { DEV } else { CENTRAL_V1 };
            let (link, next) = head.next(&model(), Recorded::of(&entry(package, &format!("e-{i}"), AuditAction::DeployStarted)));
            links.push(link);
            head = next;
        }
        (links, head)
    }

    /// The identities recorded with a chain of `n` entries as `chain(n)` makes it.
    fn identities(n: u64) -> Vec<Identity> {
        chain(n).0.iter().map(Identity::of).collect()
    }

    fn stored(links: &[Link], head: Option<&Head>, identities: Vec<Identity>) -> StoredChain {
        StoredChain { links: links.to_vec(), head: head.cloned(), identities }
    }

    /// The first broken link the walk finds in `links` and `head`, tampered with (the identities
    /// agree with every entry stored: only the chain itself is checked).
    fn first_break(links: &[Link], head: Option<&Head>) -> (u64, Break) {
        let broken = verify(&model(), &stored(links, head, links.iter().map(Identity::of).collect())).expect_err("a broken chain");
        (broken.seq, broken.what)
    }

    #[test]
    fn the_dev_and_the_central_version_of_a_model_share_its_chain() {
        let central: AccountId = CENTRAL.parse().unwrap();
        assert_eq!(chain_model(&DEV.parse().unwrap(), &central), model());
        assert_eq!(chain_model(&CENTRAL_V1.parse().unwrap(), &central), model());
        let other_team: ModelPackageArn = "arn:aws:sagemaker:us-east-1:555555555555:model-package/churn/3".parse().unwrap();
        assert_ne!(chain_model(&other_team, &central), model());
    }

    #[test]
    fn the_hash_is_sha256_of_netstrings_over_what_is_stored() {
        let recorded = Recorded::of(&entry(DEV, "e-1", AuditAction::Promoted));
        assert_eq!(recorded.at, "2026-11-29T22:42:50.760Z");
        assert_eq!(recorded.action, "promoted");
        let form = format!(
            "21:promote-audit-chain/1,18:churn-111111111111,1:1,64:{GENESIS},{}:{},3:e-1,8:promoted,24:2026-11-29T22:42:50.760Z,{}:{},",
            DEV.len(),
            DEV,
            recorded.detail.len(),
            recorded.detail
        );
        assert_eq!(link_hash("churn-111111111111", 1, GENESIS, &recorded), crate::domain::naming::hex_sha256(form.as_bytes()));
        // Netstrings keep fields apart: moving a character across a boundary changes the hash.
        let mut shifted = recorded.clone();
        shifted.event_id = "e-1p".into();
        shifted.action = "romoted".into();
        assert_ne!(link_hash("churn-111111111111", 1, GENESIS, &recorded), link_hash("churn-111111111111", 1, GENESIS, &shifted));
    }

    #[test]
    fn an_entry_reads_back_as_it_was_recorded_to_the_millisecond() {
        let original = entry(CENTRAL_V1, "job-1", AuditAction::Deployed);
        assert_eq!(Recorded::of(&original).entry(), Some(original));
        let garbled = Recorded { package: "not an arn".into(), ..Recorded::of(&entry(DEV, "e", AuditAction::Promoted)) };
        assert_eq!(garbled.entry(), None);
    }

    #[test]
    fn an_intact_chain_verifies_to_its_head() {
        let (links, head) = chain(5);
        assert_eq!(verify(&model(), &stored(&links, Some(&head), identities(5))), Ok(Verified { entries: 5, head: head.clone() }));
        assert_eq!(links[0].previous, GENESIS);
        assert!(links.windows(2).all(|pair| pair[1].previous == pair[0].hash));
        assert_eq!(verify(&model(), &StoredChain::default()), Ok(Verified { entries: 0, head: Head::genesis() }));
    }

    #[test]
    fn a_rewritten_entry_is_named() {
        let (mut links, head) = chain(5);
        links[2].recorded.detail = json!({ "by": "mallory" }).to_string();
        assert_eq!(first_break(&links, Some(&head)), (3, Break::Rewritten));
    }

    #[test]
    fn a_rewritten_and_rehashed_entry_breaks_the_link_after_it_or_the_head() {
        let (mut links, head) = chain(5);
        links[2].recorded.action = "prod-approved".into();
        links[2].hash = link_hash(&links[2].model, 3, &links[2].previous, &links[2].recorded);
        assert_eq!(first_break(&links, Some(&head)), (4, Break::Unlinked));
        let (mut links, head) = chain(5);
        links[4].recorded.event_id = "forged".into();
        links[4].hash = link_hash(&links[4].model, 5, &links[4].previous, &links[4].recorded);
        assert_eq!(first_break(&links, Some(&head)), (5, Break::HeadMismatch));
    }

    #[test]
    fn a_removed_entry_is_a_gap_and_a_removed_tail_falls_short_of_the_head() {
        let (mut links, head) = chain(5);
        links.remove(1);
        assert_eq!(first_break(&links, Some(&head)), (2, Break::Removed { through: 2 }));
        let (mut links, head) = chain(5);
        links.truncate(3);
        assert_eq!(first_break(&links, Some(&head)), (4, Break::Removed { through: 5 }));
        let (links, head) = chain(2);
        assert_eq!(first_break(&[], Some(&head)), (1, Break::Removed { through: 2 }));
        assert_eq!(first_break(&links, None), (2, Break::HeadMissing));
    }

    #[test]
    fn swapped_entries_are_reordered_and_renumbered_ones_unlinked() {
        let (mut links, head) = chain(5);
        // Each entry stored at the other's place, as it was.
        let (second, third) = (links[1].clone(), links[2].clone());
        links[1] = Link { position: 2, ..third.clone() };
        links[2] = Link { position: 3, ..second.clone() };
        assert_eq!(first_break(&links, Some(&head)), (2, Break::Reordered { recorded_seq: 3 }));
        // Renumbered and rehashed to fit the new place: the link to the entry before breaks.
        let mut renumbered = Link { position: 2, seq: 2, ..third };
        renumbered.hash = link_hash(&renumbered.model, 2, &renumbered.previous, &renumbered.recorded);
        links[1] = renumbered;
        assert_eq!(first_break(&links, Some(&head)), (2, Break::Unlinked));
    }

    #[test]
    fn an_entry_chained_twice_or_moved_from_another_model_is_named() {
        let (mut links, _) = chain(2);
        let repeated = links[0].recorded.clone();
        let (link, head) = Head { seq: 2, hash: links[1].hash.clone() }.next(&model(), repeated);
        links.push(link);
        assert_eq!(first_break(&links, Some(&head)), (3, Break::Duplicate { first: 1 }));

        let other: GroupName = "fraud-111111111111".parse().unwrap();
        let (foreign, _) = Head::genesis().next(&other, Recorded::of(&entry(DEV, "e-9", AuditAction::Promoted)));
        assert_eq!(first_break(&[foreign], None), (1, Break::Misplaced { recorded_model: other.to_string() }));
    }

    #[test]
    fn a_chain_cut_back_with_its_head_is_betrayed_by_the_identities_left_behind() {
        let (mut links, _) = chain(5);
        links.truncate(3);
        let head = Head { seq: 3, hash: links[2].hash.clone() };
        let cut = stored(&links, Some(&head), identities(5));
        let broken = verify(&model(), &cut).expect_err("the identities of 4 and 5 remain");
        let lost = Break::Lost { package: CENTRAL_V1.into(), event_id: "e-4".into(), action: "deploy-started".into() };
        assert_eq!((broken.seq, broken.what), (4, lost));
    }

    #[test]
    fn an_entry_replaced_by_a_well_chained_one_is_lost_and_one_without_identity_unrecorded() {
        let (mut links, _) = chain(3);
        let head = Head { seq: 2, hash: links[1].hash.clone() };
        let (forged, forged_head) = head.next(&model(), Recorded::of(&entry(CENTRAL_V1, "e-x", AuditAction::ProdApproved)));
        links[2] = forged;
        let broken = verify(&model(), &stored(&links, Some(&forged_head), identities(3))).expect_err("the identity of 3 remains");
        assert_eq!(broken.seq, 3);
        assert!(matches!(&broken.what, Break::Lost { event_id, .. } if event_id == "e-3"), "{broken}");

        let (links, head) = chain(3);
        let mut recorded = identities(3);
        recorded.remove(1);
        assert_eq!(verify(&model(), &stored(&links, Some(&head), recorded)).map_err(|b| (b.seq, b.what)), Err((2, Break::Unrecorded)));
    }

    #[test]
    fn entries_past_the_head_are_named() {
        let (links, _) = chain(3);
        let stale = Head { seq: 2, hash: links[1].hash.clone() };
        assert_eq!(first_break(&links, Some(&stale)), (3, Break::BeyondHead { head: 2 }));
    }

    #[test]
    fn racing_writers_back_off_with_jitter_within_a_bound() {
        assert_eq!(race_backoff(1, 0.0), Duration::ZERO);
        assert_eq!(race_backoff(1, 1.0), Duration::from_millis(10));
        assert_eq!(race_backoff(3, 0.5), Duration::from_millis(20));
        assert_eq!(race_backoff(CHAIN_ATTEMPTS, 1.0), Duration::from_millis(640));
        assert!((1..CHAIN_ATTEMPTS).map(|retry| race_backoff(retry, 1.0)).sum::<Duration>() < Duration::from_secs(3));
    }

    #[test]
    fn the_broken_link_says_model_seq_and_what() {
        let broken = BrokenLink { model: model(), seq: 4, what: Break::Rewritten };
        assert_eq!(broken.to_string(), "churn-111111111111: seq 4: rewritten: its content no longer matches its hash");
        assert_eq!(serde_json::to_value(&broken).unwrap(), json!({ "model": "churn-111111111111", "seq": 4, "what": { "kind": "rewritten" } }));
    }
}
