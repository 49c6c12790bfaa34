//! Deterministic names in the central account: the same source always lands in the same place.

use sha2::{Digest, Sha256};

use super::ids::{GroupName, ModelPackageArn, S3Uri, SAGEMAKER_NAME_MAX};
use super::package::ArtifactSlot;

/// `{group}-{devAccount}`: two dev accounts with the same group name never share a central group.
/// A group too long for that keeps a readable prefix and a hash of the whole name.
pub fn central_group_name(source: &ModelPackageArn) -> GroupName {
    let account = source.account().as_str();
    let group = source.group().as_str();
    let plain = format!("{group}-{account}");
    let name = if plain.len() <= SAGEMAKER_NAME_MAX {
        plain
    } else {
        let hash = &hex_sha256(group.as_bytes())[..8];
        let keep = SAGEMAKER_NAME_MAX - account.len() - hash.len() - 2;
        let prefix = group[..keep].trim_end_matches('-');
        format!("{prefix}-{hash}-{account}")
    };
    name.parse().expect("built from a valid group name, an account id and hex")
}

/// `{central group}/{source version}/{slot}/{file}` in the central bucket.
pub fn central_artifact_uri(bucket: &str, group: &GroupName, source: &ModelPackageArn, slot: ArtifactSlot, original: &S3Uri) -> S3Uri {
    let prefix = format!("{group}/{}/{slot}", source.version());
    S3Uri::new(bucket, &format!("{prefix}/{}", original.file_name()))
        .or_else(|_| S3Uri::new(bucket, &format!("{prefix}/{}", hex_sha256(original.key().as_bytes()))))
        .expect("bucket from config, bounded prefix and a hex file name form a valid URI")
}

/// The central version's description names its source, so that a registration whose
/// ledger write was lost can be found again without scanning every version's metadata.
pub fn central_description(source: &ModelPackageArn) -> String {
    format!("Promoted from {source}")
}

pub fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arn(group: &str) -> ModelPackageArn {
        format!("arn:aws:sagemaker:us-east-1:111111111111:model-package/{group}/7").parse().unwrap()
    }

    #[test]
    fn central_group_keeps_teams_apart() {
        assert_eq!(central_group_name(&arn("churn")).as_str(), "churn-111111111111");
        let other: ModelPackageArn = "arn:aws:sagemaker:us-east-1:555555555555:model-package/churn/7".parse().unwrap();
        assert_ne!(central_group_name(&arn("churn")), central_group_name(&other));
    }

    #[test]
    fn long_group_names_still_fit_and_stay_distinct() {
        let a = "a".repeat(63);
        let b = format!("{}b", "a".repeat(62));
        let (ca, cb) = (central_group_name(&arn(&a)), central_group_name(&arn(&b)));
        assert_eq!(ca.as_str().len(), 63);
        assert!(cb.as_str().len() <= 63);
        assert_ne!(ca, cb);
        assert!(ca.as_str().ends_with("-111111111111"));
        let hyphen_at_cut = format!("{}-{}", "a".repeat(40), "b".repeat(22));
        assert!(central_group_name(&arn(&hyphen_at_cut)).as_str().len() <= 63);
    }

    #[test]
    fn artifact_keys_are_deterministic_and_bounded() {
        let source = arn("churn");
        let group = central_group_name(&source);
        let original: S3Uri = "s3://dev-bucket/train/out/model.tar.gz".parse().unwrap();
        let uri = central_artifact_uri("central", &group, &source, ArtifactSlot::ModelData { container: 0 }, &original);
        assert_eq!(uri.to_string(), "s3://central/churn-111111111111/7/model/0/model.tar.gz");
        let long: S3Uri = format!("s3://dev-bucket/{}", "n".repeat(1000)).parse().unwrap();
        let bounded = central_artifact_uri("central", &group, &source, ArtifactSlot::ModelData { container: 0 }, &long);
        assert!(bounded.key().len() < 200);
    }
}
