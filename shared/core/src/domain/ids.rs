//! Identifiers that parse once at the edge and stay valid afterwards.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("account id `{0}` is not 12 digits")]
    Account(String),
    #[error("`{0}` is not a SageMaker model package version ARN (arn:aws:sagemaker:REGION:ACCOUNT:model-package/GROUP/VERSION)")]
    PackageArn(String),
    #[error("model package group name `{0}` is malformed: 1-63 letters, digits and single hyphens, starting and ending alphanumeric")]
    GroupName(String),
    #[error("`{0}` is not an s3://bucket/key URI")]
    S3Uri(String),
    #[error("S3 URI is {0} characters, more than the 1024 allowed")]
    S3UriTooLong(usize),
    #[error("unknown stage `{0}` (expected test or prod)")]
    Stage(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountId(String);

impl AccountId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for AccountId {
    type Err = IdError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        if raw.len() == 12 && raw.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(IdError::Account(truncated(raw)))
        }
    }
}

/// SageMaker's name rule for model package groups and model cards.
pub const SAGEMAKER_NAME_MAX: usize = 63;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct GroupName(String);

impl GroupName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for GroupName {
    type Err = IdError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        if is_sagemaker_name(raw) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(IdError::GroupName(truncated(raw)))
        }
    }
}

/// `^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$`, SageMaker's pattern for entity names.
pub fn is_sagemaker_name(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= SAGEMAKER_NAME_MAX
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ModelPackageArn {
    raw: String,
    region: String,
    account: AccountId,
    group: GroupName,
    version: u32,
}

impl ModelPackageArn {
    pub fn new(region: &str, account: &AccountId, group: &GroupName, version: u32) -> Self {
        let raw = format!("arn:aws:sagemaker:{region}:{}:model-package/{}/{version}", account.as_str(), group.as_str());
        Self { raw, region: region.to_owned(), account: account.clone(), group: group.clone(), version }
    }
    pub fn as_str(&self) -> &str {
        &self.raw
    }
    pub fn region(&self) -> &str {
        &self.region
    }
    pub fn account(&self) -> &AccountId {
        &self.account
    }
    pub fn group(&self) -> &GroupName {
        &self.group
    }
    pub fn version(&self) -> u32 {
        self.version
    }
}

impl FromStr for ModelPackageArn {
    type Err = IdError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let err = || IdError::PackageArn(truncated(raw));
        let rest = raw.strip_prefix("arn:").ok_or_else(err)?;
        let mut fields = rest.splitn(5, ':');
        let (partition, service, region, account, resource) = (
            fields.next().ok_or_else(err)?,
            fields.next().ok_or_else(err)?,
            fields.next().ok_or_else(err)?,
            fields.next().ok_or_else(err)?,
            fields.next().ok_or_else(err)?,
        );
        let region_ok = !region.is_empty() && region.len() <= 32 && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !partition.starts_with("aws") || service != "sagemaker" || !region_ok {
            return Err(err());
        }
        let account: AccountId = account.parse().map_err(|_| err())?;
        let path = resource.strip_prefix("model-package/").ok_or_else(err)?;
        let (group, version) = path.split_once('/').ok_or_else(err)?;
        let group: GroupName = group.parse().map_err(|_| err())?;
        let version: u32 = version.parse().ok().filter(|v| *v > 0 && !version.starts_with('0')).ok_or_else(err)?;
        Ok(Self::new(region, &account, &group, version))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct S3Uri {
    bucket: String,
    key: String,
}

pub const S3_URI_MAX: usize = 1024;

impl S3Uri {
    pub fn new(bucket: &str, key: &str) -> Result<Self, IdError> {
        format!("s3://{bucket}/{key}").parse()
    }
    pub fn bucket(&self) -> &str {
        &self.bucket
    }
    pub fn key(&self) -> &str {
        &self.key
    }
    /// The last path segment, used to keep artifact names readable in the central bucket.
    pub fn file_name(&self) -> &str {
        self.key.rsplit('/').next().unwrap_or(&self.key)
    }
}

impl FromStr for S3Uri {
    type Err = IdError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        if raw.len() > S3_URI_MAX {
            return Err(IdError::S3UriTooLong(raw.len()));
        }
        let err = || IdError::S3Uri(truncated(raw));
        let (bucket, key) = raw.strip_prefix("s3://").and_then(|rest| rest.split_once('/')).ok_or_else(err)?;
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && bucket.as_bytes()[0].is_ascii_alphanumeric();
        let key_ok =
            !key.is_empty() && !key.ends_with('/') && !key.split('/').any(|segment| segment == ".." || segment == ".") && !key.chars().any(char::is_control);
        if bucket_ok && key_ok {
            Ok(Self { bucket: bucket.to_owned(), key: key.to_owned() })
        } else {
            Err(err())
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Test,
    Prod,
}

impl FromStr for Stage {
    type Err = IdError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw {
            "test" => Ok(Self::Test),
            "prod" => Ok(Self::Prod),
            other => Err(IdError::Stage(truncated(other))),
        }
    }
}

macro_rules! string_newtype_conversions {
    ($($ty:ty),*) => {$(
        impl TryFrom<String> for $ty {
            type Error = IdError;
            fn try_from(raw: String) -> Result<Self, Self::Error> {
                raw.parse()
            }
        }
        impl From<$ty> for String {
            fn from(id: $ty) -> String {
                id.to_string()
            }
        }
    )*};
}
string_newtype_conversions!(AccountId, GroupName, ModelPackageArn, S3Uri);

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Display for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Display for ModelPackageArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}
impl fmt::Display for S3Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}
impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Test => "test",
            Self::Prod => "prod",
        })
    }
}

/// Error messages quote the offending input, but never more than a screenful of it.
pub(crate) fn truncated(raw: &str) -> String {
    const SHOWN: usize = 120;
    match raw.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{}…", &raw[..cut]),
        None => raw.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_arn_parses_its_parts() {
        let arn: ModelPackageArn = "arn:aws:sagemaker:us-east-2:123456789012:model-package/versionedmp-p-idy6c3e1fiqj/2".parse().unwrap();
        assert_eq!(arn.account().as_str(), "123456789012");
        assert_eq!(arn.group().as_str(), "versionedmp-p-idy6c3e1fiqj");
        assert_eq!(arn.version(), 2);
        assert_eq!(arn.region(), "us-east-2");
    }

    #[test]
    fn package_arn_rejects_group_arns_paths_and_bad_versions() {
        for bad in [
            "arn:aws:sagemaker:us-east-2:123456789012:model-package-group/g",
            "arn:aws:sagemaker:us-east-2:123456789012:model-package/g/0",
            "arn:aws:sagemaker:us-east-2:123456789012:model-package/g/01",
            "arn:aws:sagemaker:us-east-2:123456789012:model-package/../2",
            "arn:aws:sagemaker:us-east-2:123456789012:model-package/a/b/2",
            "arn:aws:s3:us-east-2:123456789012:model-package/g/2",
            "arn:aws:sagemaker:us-east-2:12345678901:model-package/g/2",
            "model-package/g/2",
        ] {
            assert!(bad.parse::<ModelPackageArn>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn group_names_follow_sagemaker_rules() {
        assert!("a".parse::<GroupName>().is_ok());
        assert!("a".repeat(63).parse::<GroupName>().is_ok());
        for bad in ["", "-a", "a-", "a_b", "a/b", "..", &"a".repeat(64)] {
            assert!(bad.parse::<GroupName>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn s3_uris_need_bucket_and_object_key() {
        let uri: S3Uri = "s3://dev-bucket/models/v1/model.tar.gz".parse().unwrap();
        assert_eq!(uri.bucket(), "dev-bucket");
        assert_eq!(uri.file_name(), "model.tar.gz");
        for bad in ["s3://bucket", "s3://bucket/", "https://b/k", "s3://B/k", "s3://b/../k", "s3://bucket/dir/"] {
            assert!(bad.parse::<S3Uri>().is_err(), "{bad} parsed");
        }
        let long = format!("s3://bucket/{}", "k".repeat(1100));
        assert_eq!(long.parse::<S3Uri>(), Err(IdError::S3UriTooLong(long.len())));
    }

    #[test]
    fn error_messages_do_not_echo_huge_input() {
        let huge = "x".repeat(100_000);
        let message = huge.parse::<AccountId>().unwrap_err().to_string();
        assert!(message.len() < 300);
    }
}
