//! The functions' configuration, read once from the environment: promote-model's and the
//! deployment functions'.

use std::collections::BTreeMap;

use crate::domain::copy::{CopySettings, MIN_PART_SIZE};
use crate::domain::deploy::StageConfig;
use crate::domain::ids::{AccountId, IdError};
use crate::domain::image::AwsImageRegistries;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromoteConfig {
    pub central_account: AccountId,
    /// Allow-listed dev accounts and the buckets their packages may name.
    pub source_accounts: BTreeMap<AccountId, Vec<String>>,
    pub source_read_role: String,
    pub artifact_bucket: String,
    pub kms_key_id: String,
    pub ledger_table: String,
    /// The append-only audit table: every model's hash chain.
    pub audit_table: String,
    pub event_bus: String,
    pub copy: CopySettings,
    /// The AWS registries whose images are pinned where they are (`AWS_IMAGE_REGISTRIES`,
    /// comma-separated account ids; SageMaker's own registries when unset).
    pub aws_image_registries: AwsImageRegistries,
}

pub const DEFAULT_SOURCE_READ_ROLE: &str = "model-promotion-source-read";

/// The stage accounts' role `promote rollback` assumes (`OPERATOR_ROLLBACK_ROLE_NAME` overrides
/// it): it may only point `promoted-*` endpoints at existing `promoted-*` endpoint configs.
pub const DEFAULT_OPERATOR_ROLLBACK_ROLE: &str = "model-promotion-operator-rollback";

impl PromoteConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |name: &'static str| lookup(name).filter(|v| !v.is_empty()).ok_or(ConfigError::Missing(name));
        let defaults = CopySettings::default();
        let number = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            lookup(name).map_or(Ok(default), |raw| raw.parse().map_err(|_| ConfigError::Invalid { name, reason: format!("`{raw}` is not a number") }))
        };
        let copy = CopySettings {
            multipart_threshold: number("MULTIPART_THRESHOLD_BYTES", defaults.multipart_threshold)?,
            part_size: number("COPY_PART_SIZE_BYTES", defaults.part_size)?,
            concurrency: usize::try_from(number("COPY_CONCURRENCY", defaults.concurrency as u64)?).unwrap_or(usize::MAX),
        };
        if copy.part_size < MIN_PART_SIZE || copy.concurrency == 0 {
            return Err(ConfigError::Invalid {
                name: "COPY_PART_SIZE_BYTES/COPY_CONCURRENCY",
                reason: "parts are at least 5 MiB and concurrency at least 1".into(),
            });
        }
        let account = |name: &'static str| -> Result<AccountId, ConfigError> {
            required(name)?.parse().map_err(|e: IdError| ConfigError::Invalid { name, reason: e.to_string() })
        };
        Ok(Self {
            central_account: account("CENTRAL_ACCOUNT_ID")?,
            source_accounts: parse_source_accounts(&required("SOURCE_ACCOUNTS")?)?,
            source_read_role: lookup("SOURCE_READ_ROLE_NAME").unwrap_or_else(|| DEFAULT_SOURCE_READ_ROLE.into()),
            artifact_bucket: required("ARTIFACT_BUCKET")?,
            kms_key_id: required("ARTIFACT_KMS_KEY_ID")?,
            ledger_table: required("LEDGER_TABLE")?,
            audit_table: required("AUDIT_TABLE")?,
            event_bus: required("EVENT_BUS_NAME")?,
            copy,
            aws_image_registries: match lookup("AWS_IMAGE_REGISTRIES").filter(|v| !v.is_empty()) {
                Some(raw) => AwsImageRegistries::parse(&raw).map_err(|reason| ConfigError::Invalid { name: "AWS_IMAGE_REGISTRIES", reason })?,
                None => AwsImageRegistries::default(),
            },
        })
    }
}

/// The deployment functions' configuration.
#[derive(Debug, Clone)]
pub struct DeployConfig {
    pub central_account: AccountId,
    pub stages: StageConfig,
    pub artifact_bucket: String,
    pub kms_key_id: String,
    pub ledger_table: String,
    /// The append-only audit table: every model's hash chain.
    pub audit_table: String,
    pub pipeline: String,
    pub approval_topic_arn: String,
    /// The bucket of test reports: versioned, under S3 Object Lock, each report written once.
    pub evidence_bucket: String,
    /// How long a report stays locked in compliance mode: no one, root included, may delete or
    /// overwrite that version before.
    pub evidence_retention_days: u32,
    /// Four eyes: the prod approver must be another person than the dev and the central
    /// approvers (`SEPARATION_OF_DUTIES`, on unless `off`).
    pub separation_of_duties: bool,
}

/// The stage settings of the local accounts (demo and tests); an example for real ones.
pub const LOCAL_STAGE_CONFIG: &str = include_str!("../stage-config.local.json");

impl DeployConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |name: &'static str| lookup(name).filter(|v| !v.is_empty()).ok_or(ConfigError::Missing(name));
        let invalid = |name: &'static str| move |reason: String| ConfigError::Invalid { name, reason };
        Ok(Self {
            central_account: required("CENTRAL_ACCOUNT_ID")?.parse().map_err(|e: IdError| invalid("CENTRAL_ACCOUNT_ID")(e.to_string()))?,
            stages: StageConfig::parse(&required("STAGE_CONFIG")?).map_err(|e| invalid("STAGE_CONFIG")(e.to_string()))?,
            artifact_bucket: required("ARTIFACT_BUCKET")?,
            kms_key_id: required("ARTIFACT_KMS_KEY_ID")?,
            ledger_table: required("LEDGER_TABLE")?,
            audit_table: required("AUDIT_TABLE")?,
            pipeline: required("PIPELINE_NAME")?,
            approval_topic_arn: required("APPROVAL_TOPIC_ARN")?,
            evidence_bucket: required("EVIDENCE_BUCKET")?,
            evidence_retention_days: retention_days(&required("EVIDENCE_RETENTION_DAYS")?)?,
            separation_of_duties: match lookup("SEPARATION_OF_DUTIES").as_deref().map(str::trim) {
                None | Some("" | "on") => true,
                Some("off") => false,
                Some(other) => return Err(invalid("SEPARATION_OF_DUTIES")(format!("`{other}` is neither on nor off"))),
            },
        })
    }
}

/// A whole number of days, at least one (S3 Object Lock's default retention counts in days).
fn retention_days(raw: &str) -> Result<u32, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid { name: "EVIDENCE_RETENTION_DAYS", reason };
    let days: u32 = raw.parse().map_err(|_| invalid(format!("`{raw}` is not a number of days")))?;
    if days == 0 {
        return Err(invalid("a report must stay locked at least one day".into()));
    }
    Ok(days)
}

/// `111111111111=bucket-a,bucket-b;555555555555=bucket-c`
pub fn parse_source_accounts(raw: &str) -> Result<BTreeMap<AccountId, Vec<String>>, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid { name: "SOURCE_ACCOUNTS", reason };
    raw.split(';')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let (account, buckets) = entry.split_once('=').ok_or_else(|| invalid(format!("`{entry}` is not ACCOUNT=bucket,bucket")))?;
            let account: AccountId = account.trim().parse().map_err(|e: IdError| invalid(e.to_string()))?;
            let buckets: Vec<String> = buckets.split(',').map(str::trim).filter(|b| !b.is_empty()).map(str::to_owned).collect();
            if buckets.is_empty() {
                return Err(invalid(format!("account {account} names no bucket")));
            }
            Ok((account, buckets))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_accounts_list_buckets_per_account() {
        let parsed = parse_source_accounts("111111111111=a-b,c-d; 555555555555=e-f").unwrap();
        assert_eq!(parsed[&"111111111111".parse::<AccountId>().unwrap()], vec!["a-b", "c-d"]);
        assert_eq!(parsed.len(), 2);
        assert!(parse_source_accounts("111111111111").is_err());
        assert!(parse_source_accounts("1111=a").is_err());
        assert!(parse_source_accounts("111111111111=").is_err());
    }

    #[test]
    fn the_evidence_retention_is_a_positive_number_of_days() {
        assert_eq!(retention_days("2555"), Ok(2555));
        for bad in ["0", "-1", "7y", ""] {
            assert!(matches!(retention_days(bad), Err(ConfigError::Invalid { name: "EVIDENCE_RETENTION_DAYS", .. })), "{bad}");
        }
    }

    #[test]
    fn missing_settings_are_named() {
        let err = PromoteConfig::from_lookup(|_| None).unwrap_err();
        assert_eq!(err, ConfigError::Missing("CENTRAL_ACCOUNT_ID"));
    }
}
