//! Lineage written into the central version's `CustomerMetadataProperties`.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};

use super::fingerprint::ReleaseFingerprint;
use super::ids::ModelPackageArn;
use super::ledger::CopiedArtifact;

pub const SOURCE_ARN: &str = "promotion:source-arn";
pub const SOURCE_ACCOUNT: &str = "promotion:source-account";
pub const SOURCE_VERSION: &str = "promotion:source-version";
pub const EVENT_ID: &str = "promotion:event-id";
pub const PROMOTED_AT: &str = "promotion:promoted-at";
pub const REVOKED_BY: &str = "promotion:revoked-by-event";
pub const FINGERPRINT: &str = "promotion:release-fingerprint";
const CHECKSUM_PREFIX: &str = "promotion:sha256:";

/// SageMaker keeps at most 50 metadata entries; six are ours (seven once revoked), the rest one per artifact.
pub const MAX_ARTIFACTS: usize = 40;

pub fn lineage(
    source: &ModelPackageArn,
    event_id: &str,
    promoted_at: DateTime<Utc>,
    artifacts: &[CopiedArtifact],
    fingerprint: &ReleaseFingerprint,
) -> BTreeMap<String, String> {
    let mut metadata = BTreeMap::from([
        (SOURCE_ARN.to_owned(), source.to_string()),
        (SOURCE_ACCOUNT.to_owned(), source.account().to_string()),
        (SOURCE_VERSION.to_owned(), source.version().to_string()),
        (EVENT_ID.to_owned(), event_id.to_owned()),
        (PROMOTED_AT.to_owned(), promoted_at.to_rfc3339_opts(SecondsFormat::Secs, true)),
        (FINGERPRINT.to_owned(), fingerprint.to_string()),
    ]);
    for artifact in artifacts {
        metadata.insert(format!("{CHECKSUM_PREFIX}{}", artifact.slot), artifact.sha256.clone());
    }
    metadata
}
