//! Container images by reference, parsed once: Amazon ECR's private registries only
//! (`ACCOUNT.dkr.ecr.REGION.amazonaws.com[.cn]/REPOSITORY[:TAG][@sha256:HEX]`), the AWS
//! registries whose images are pinned where they are, and the central repository of a model.
//!
//! A general OCI reference parser (oci-spec's `Reference`, oci-client's) normalises what it is
//! given (Docker Hub's `library/`, default tags) and accepts registries and names ECR refuses;
//! this one refuses instead, and says why.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use super::ids::{truncated, AccountId, GroupName};
use super::naming::hex_sha256;

/// SageMaker's limit on a container's `Image`.
pub const IMAGE_REFERENCE_MAX: usize = 255;
/// ECR's limit on a repository name.
const REPOSITORY_MAX: usize = 256;
/// A Docker tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
const TAG_MAX: usize = 128;
/// Every central repository is under it: the infra's replication filter, repository creation
/// template and registry scanning rule name this prefix, and the stage roles pull below it only.
pub const CENTRAL_REPOSITORY_PREFIX: &str = "model-promotion";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("the image reference is empty")]
    Empty,
    #[error("image reference `{0}` is longer than the {IMAGE_REFERENCE_MAX} characters SageMaker takes")]
    TooLong(String),
    #[error("image reference `{0}` holds whitespace, control or non-ASCII characters")]
    Unprintable(String),
    #[error("image `{image}` is in registry `{registry}`, not in a private Amazon ECR registry (ACCOUNT.dkr.ecr.REGION.amazonaws.com)")]
    NotEcr { image: String, registry: String },
    #[error("image `{0}` names no repository")]
    NoRepository(String),
    #[error("image `{0}` names a repository ECR does not allow (2-256 lowercase letters, digits and single `.`, `_`, `-` or `/` between them)")]
    Repository(String),
    #[error("image `{0}` has a malformed tag (letters, digits, `_`, `.`, `-`, at most 128, not starting with `.` or `-`)")]
    Tag(String),
    #[error("image `{0}` has a digest that is not sha256:<64 lowercase hex digits>")]
    Digest(String),
    #[error("image `{0}` names neither a tag nor a digest")]
    Unversioned(String),
}

/// `sha256:<64 lowercase hex>`: what ECR reports and what a pinned reference ends with.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageDigest(String);

impl ImageDigest {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ImageDigest {
    type Err = ImageError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let hex = raw.strip_prefix("sha256:").ok_or_else(|| ImageError::Digest(truncated(raw)))?;
        if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ImageError::Digest(truncated(raw)))
        }
    }
}

/// An ECR repository name: `(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*`, 2-256.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepositoryName(String);

impl RepositoryName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for RepositoryName {
    type Err = ImageError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let component_ok = |c: &str| {
            let bytes = c.as_bytes();
            !bytes.is_empty()
                && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(b))
                && bytes[0].is_ascii_alphanumeric()
                && bytes[bytes.len() - 1].is_ascii_alphanumeric()
                && !bytes.windows(2).any(|pair| !pair[0].is_ascii_alphanumeric() && !pair[1].is_ascii_alphanumeric())
        };
        if (2..=REPOSITORY_MAX).contains(&raw.len()) && raw.split('/').all(component_ok) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ImageError::Repository(truncated(raw)))
        }
    }
}

/// A private ECR registry: one account in one region.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EcrRegistry {
    pub account: AccountId,
    pub region: String,
}

impl EcrRegistry {
    /// `ACCOUNT.dkr.ecr.REGION.amazonaws.com`, `.com.cn` in the China regions.
    fn parse_host(host: &str) -> Option<Self> {
        let (account, rest) = host.split_once(".dkr.ecr.")?;
        let (region, suffix) = rest.split_once('.')?;
        let region_ok = !region.is_empty() && region.len() <= 32 && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let suffix_ok = if region.starts_with("cn-") { suffix == "amazonaws.com.cn" } else { suffix == "amazonaws.com" };
        (region_ok && suffix_ok).then_some(())?;
        Some(Self { account: account.parse().ok()?, region: region.to_owned() })
    }
}

impl fmt::Display for EcrRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cn = if self.region.starts_with("cn-") { ".cn" } else { "" };
        write!(f, "{}.dkr.ecr.{}.amazonaws.com{cn}", self.account, self.region)
    }
}

/// An image in a private ECR registry, by tag, by digest, or both (the digest decides then).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    pub registry: EcrRegistry,
    pub repository: RepositoryName,
    pub tag: Option<String>,
    pub digest: Option<ImageDigest>,
}

impl ImageRef {
    /// The same image, named by `digest` alone: what a pinned container carries.
    pub fn at(registry: EcrRegistry, repository: RepositoryName, digest: ImageDigest) -> Self {
        Self { registry, repository, tag: None, digest: Some(digest) }
    }
}

impl FromStr for ImageRef {
    type Err = ImageError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        if raw.is_empty() {
            return Err(ImageError::Empty);
        }
        if raw.len() > IMAGE_REFERENCE_MAX {
            return Err(ImageError::TooLong(truncated(raw)));
        }
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ImageError::Unprintable(truncated(raw)));
        }
        let (named, digest) = match raw.split_once('@') {
            Some((named, digest)) => (named, Some(digest.parse::<ImageDigest>().map_err(|_| ImageError::Digest(raw.to_owned()))?)),
            None => (raw, None),
        };
        // Docker's rule: the first component is a registry host when it looks like one;
        // otherwise the image is on Docker Hub.
        let (host, path) = match named.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => (first, rest),
            _ => ("docker.io", named),
        };
        let registry = EcrRegistry::parse_host(host).ok_or_else(|| ImageError::NotEcr { image: raw.to_owned(), registry: host.to_owned() })?;
        // A tag follows the last `:` after the last `/`.
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repository, tag)) if !tag.contains('/') => (repository, Some(tag)),
            _ => (path, None),
        };
        if repository.is_empty() {
            return Err(ImageError::NoRepository(raw.to_owned()));
        }
        let repository: RepositoryName = repository.parse().map_err(|_| ImageError::Repository(raw.to_owned()))?;
        let tag = tag.map(|tag| if is_tag(tag) { Ok(tag.to_owned()) } else { Err(ImageError::Tag(raw.to_owned())) }).transpose()?;
        if tag.is_none() && digest.is_none() {
            return Err(ImageError::Unversioned(raw.to_owned()));
        }
        Ok(Self { registry, repository, tag, digest })
    }
}

fn is_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    (1..=TAG_MAX).contains(&bytes.len())
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(b))
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl fmt::Display for ImageDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The AWS accounts whose ECR registries hold SageMaker's own images. A container image of one
/// of them is pinned by digest where it is: AWS keeps those images, and every account may pull
/// them. Taken from the SageMaker Python SDK's `src/sagemaker/image_uri_config/
/// framework-region-registry.json`: the registries of its `pytorch`, `tensorflow`, `mxnet`
/// (the Deep Learning Containers, Hugging Face's too) and of its `xgboost`, `sklearn` and
/// `sparkml-serving` families, in the commercial regions (China and GovCloud have accounts of
/// their own: name them in `AWS_IMAGE_REGISTRIES`, which replaces this list). infra/names.json
/// holds the same list for the templates' defaults.
pub const DEFAULT_AWS_IMAGE_REGISTRIES: &[&str] = &[
    // Deep Learning Containers: most regions, ap-east-1, me-south-1.
    "763104351884",
    "871362719292",
    "217643126080",
    // xgboost, sklearn and sparkml-serving, one account per region.
    "683313688378", // us-east-1
    "257758044811", // us-east-2
    "746614075791", // us-west-1
    "246618743249", // us-west-2
    "651117190479", // ap-east-1
    "354813040037", // ap-northeast-1
    "366743142698", // ap-northeast-2
    "720646828776", // ap-south-1
    "121021644041", // ap-southeast-1
    "783357654285", // ap-southeast-2
    "341280168497", // ca-central-1
    "492215442770", // eu-central-1
    "662702820516", // eu-north-1
    "141502667606", // eu-west-1
    "764974769150", // eu-west-2
    "659782779980", // eu-west-3
    "801668240914", // me-south-1
    "737474898029", // sa-east-1
];

/// The allow-list of AWS image registries (see [`DEFAULT_AWS_IMAGE_REGISTRIES`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsImageRegistries(BTreeSet<AccountId>);

impl AwsImageRegistries {
    /// Comma-separated account ids.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let accounts: BTreeSet<AccountId> = raw
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| a.parse().map_err(|e: super::ids::IdError| e.to_string()))
            .collect::<Result<_, _>>()?;
        Ok(Self(accounts))
    }

    pub fn contains(&self, account: &AccountId) -> bool {
        self.0.contains(account)
    }
}

impl Default for AwsImageRegistries {
    fn default() -> Self {
        Self(DEFAULT_AWS_IMAGE_REGISTRIES.iter().map(|a| a.parse().expect("the default list holds account ids")).collect())
    }
}

/// The central repository of a central model group: `model-promotion/{group}`, lowercased
/// (ECR's names are) with runs of hyphens made one; a group that changes thereby gets a hash
/// of its exact name, so that `Churn` and `churn` never share a repository. ECR replication
/// keeps a repository's name, so it is the name of the dev repository the image is pushed to.
pub fn central_repository(group: &GroupName) -> RepositoryName {
    let mut normal = String::with_capacity(group.as_str().len());
    for c in group.as_str().chars() {
        if !(c == '-' && normal.ends_with('-')) {
            normal.push(c.to_ascii_lowercase());
        }
    }
    let name = if normal == group.as_str() {
        format!("{CENTRAL_REPOSITORY_PREFIX}/{normal}")
    } else {
        format!("{CENTRAL_REPOSITORY_PREFIX}/{normal}-{}", &hex_sha256(group.as_str().as_bytes())[..8])
    };
    name.parse().expect("a prefix, a lowercased SageMaker name and hex form a valid repository name")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn image(raw: &str) -> Result<ImageRef, ImageError> {
        raw.parse()
    }

    #[test]
    fn an_ecr_image_by_tag_by_digest_or_both_parses_into_its_parts() {
        let tagged = image("111111111111.dkr.ecr.us-east-1.amazonaws.com/model-promotion/churn-111111111111:serving-1").unwrap();
        assert_eq!(tagged.registry, EcrRegistry { account: "111111111111".parse().unwrap(), region: "us-east-1".into() });
        assert_eq!(tagged.repository.as_str(), "model-promotion/churn-111111111111");
        assert_eq!((tagged.tag.as_deref(), tagged.digest.as_ref()), (Some("serving-1"), None));

        let both = image(&format!("763104351884.dkr.ecr.eu-west-1.amazonaws.com/pytorch-inference:2.1.0-cpu-py310@{DIGEST}")).unwrap();
        assert_eq!((both.tag.as_deref(), both.digest.as_ref().map(ImageDigest::as_str)), (Some("2.1.0-cpu-py310"), Some(DIGEST)));

        let china = image(&format!("727897471807.dkr.ecr.cn-north-1.amazonaws.com.cn/pytorch-inference@{DIGEST}")).unwrap();
        assert_eq!((china.registry.region.as_str(), china.tag), ("cn-north-1", None));
    }

    #[test]
    fn a_parsed_image_prints_as_it_was_written_and_pins_to_its_digest_alone() {
        for raw in [
            "111111111111.dkr.ecr.us-east-1.amazonaws.com/a/b/c:1.0".to_owned(),
            format!("111111111111.dkr.ecr.us-east-1.amazonaws.com/repo@{DIGEST}"),
            format!("727897471807.dkr.ecr.cn-north-1.amazonaws.com.cn/xy:z@{DIGEST}"),
        ] {
            assert_eq!(image(&raw).unwrap().to_string(), raw);
        }
        let tagged = image("683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1").unwrap();
        let pinned = ImageRef::at(tagged.registry, tagged.repository, DIGEST.parse().unwrap());
        assert_eq!(pinned.to_string(), format!("683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost@{DIGEST}"));
    }

    #[test]
    fn other_registries_are_named_in_the_refusal() {
        let cases = [
            ("xgboost:1.7-1", "docker.io"),
            ("library/python:3.12", "docker.io"),
            ("docker.io/library/python:3.12", "docker.io"),
            ("ghcr.io/org/model:1", "ghcr.io"),
            ("public.ecr.aws/sagemaker/model:1", "public.ecr.aws"),
            ("localhost:5000/model:1", "localhost:5000"),
            ("localhost/model:1", "localhost"),
            // Look-alikes of an ECR host.
            ("111111111111.dkr.ecr.us-east-1.amazonaws.com.evil.example/repo:1", "111111111111.dkr.ecr.us-east-1.amazonaws.com.evil.example"),
            ("111111111111.dkr.ecr.us-east-1.amazonaws.com:443/repo:1", "111111111111.dkr.ecr.us-east-1.amazonaws.com:443"),
            ("111111111111.dkr.ecr.us-east-1.amazonaws.com.cn/repo:1", "111111111111.dkr.ecr.us-east-1.amazonaws.com.cn"),
            ("111111111111.dkr.ecr.cn-north-1.amazonaws.com/repo:1", "111111111111.dkr.ecr.cn-north-1.amazonaws.com"),
            ("11111111111.dkr.ecr.us-east-1.amazonaws.com/repo:1", "11111111111.dkr.ecr.us-east-1.amazonaws.com"),
            ("evil.111111111111.dkr.ecr.us-east-1.amazonaws.com/repo:1", "evil.111111111111.dkr.ecr.us-east-1.amazonaws.com"),
            ("111111111111.dkr.ecr.US-EAST-1.amazonaws.com/repo:1", "111111111111.dkr.ecr.US-EAST-1.amazonaws.com"),
            ("111111111111.dkr.ecr-fips.us-east-1.amazonaws.com/repo:1", "111111111111.dkr.ecr-fips.us-east-1.amazonaws.com"),
        ];
        for (raw, registry) in cases {
            match image(raw) {
                Err(ImageError::NotEcr { registry: named, .. }) => assert_eq!(named, registry, "{raw}"),
                other => panic!("{raw}: {other:?}"),
            }
        }
    }

    #[test]
    fn malformed_ecr_references_are_refused_for_what_is_wrong() {
        let host = "111111111111.dkr.ecr.us-east-1.amazonaws.com";
        let long_tag = "t".repeat(129);
        type Expected = fn(&ImageError) -> bool;
        let cases: Vec<(String, Expected)> = vec![
            (String::new(), |e| matches!(e, ImageError::Empty)),
            (format!("{host}/{}:1", "a".repeat(250)), |e| matches!(e, ImageError::TooLong(_))),
            (format!("{host}/repo :1"), |e| matches!(e, ImageError::Unprintable(_))),
            (format!("{host}/repo\n:1"), |e| matches!(e, ImageError::Unprintable(_))),
            (format!("{host}/répo:1"), |e| matches!(e, ImageError::Unprintable(_))),
            (format!("{host}/"), |e| matches!(e, ImageError::NoRepository(_))),
            (format!("{host}/:1"), |e| matches!(e, ImageError::NoRepository(_))),
            (format!("{host}/Repo:1"), |e| matches!(e, ImageError::Repository(_))),
            (format!("{host}/a//b:1"), |e| matches!(e, ImageError::Repository(_))),
            (format!("{host}/a/../b:1"), |e| matches!(e, ImageError::Repository(_))),
            (format!("{host}/a--b:1"), |e| matches!(e, ImageError::Repository(_))),
            (format!("{host}/-a:1"), |e| matches!(e, ImageError::Repository(_))),
            (format!("{host}/a:1"), |e| matches!(e, ImageError::Repository(_))),
            (format!("{host}/repo:"), |e| matches!(e, ImageError::Tag(_))),
            (format!("{host}/repo:.1"), |e| matches!(e, ImageError::Tag(_))),
            (format!("{host}/repo:{long_tag}"), |e| matches!(e, ImageError::Tag(_))),
            (format!("{host}/repo:a:b"), |e| matches!(e, ImageError::Repository(_))),
            (format!("{host}/repo"), |e| matches!(e, ImageError::Unversioned(_))),
            (format!("{host}/repo@sha256:abc"), |e| matches!(e, ImageError::Digest(_))),
            (format!("{host}/repo@{}", DIGEST.to_uppercase().replace("SHA256", "sha256")), |e| matches!(e, ImageError::Digest(_))),
            (format!("{host}/repo@sha512:{}", "a".repeat(128)), |e| matches!(e, ImageError::Digest(_))),
            (format!("{host}/repo@{DIGEST}@{DIGEST}"), |e| matches!(e, ImageError::Digest(_))),
            (format!("{host}/repo@"), |e| matches!(e, ImageError::Digest(_))),
        ];
        for (raw, expected) in cases {
            let error = image(&raw).expect_err(&raw);
            assert!(expected(&error), "{raw}: {error:?}");
        }
    }

    #[test]
    fn a_refusal_quotes_no_more_than_a_screenful_of_a_huge_input() {
        let huge = format!("{}:1", "a".repeat(100_000));
        assert!(image(&huge).unwrap_err().to_string().len() < 400);
    }

    #[test]
    fn the_aws_allow_list_defaults_to_sagemakers_registries_and_is_configurable() {
        let defaults = AwsImageRegistries::default();
        assert!(defaults.contains(&"763104351884".parse().unwrap()));
        assert!(defaults.contains(&"683313688378".parse().unwrap()));
        assert!(!defaults.contains(&"111111111111".parse().unwrap()));
        let configured = AwsImageRegistries::parse(" 763104351884, 999999999999 ,").unwrap();
        assert!(configured.contains(&"999999999999".parse().unwrap()));
        assert!(!configured.contains(&"683313688378".parse().unwrap()));
        assert!(AwsImageRegistries::parse("76310435188").is_err());
    }

    #[test]
    fn the_central_repository_of_a_group_is_deterministic_valid_and_keeps_groups_apart() {
        let group = |raw: &str| raw.parse::<GroupName>().unwrap();
        assert_eq!(central_repository(&group("churn-prediction-111111111111")).as_str(), "model-promotion/churn-prediction-111111111111");
        let upper = central_repository(&group("Churn-111111111111"));
        let hyphens = central_repository(&group("churn--x-111111111111"));
        assert!(upper.as_str().starts_with("model-promotion/churn-111111111111-"), "{upper}");
        assert!(hyphens.as_str().starts_with("model-promotion/churn-x-111111111111-"), "{hyphens}");
        assert_ne!(upper, central_repository(&group("churn-111111111111")));
        assert_ne!(upper, central_repository(&group("CHURN-111111111111")));
        assert_eq!(upper, central_repository(&group("Churn-111111111111")));
        let longest = central_repository(&group(&format!("{}-111111111111", "A".repeat(50))));
        assert!(longest.as_str().len() <= REPOSITORY_MAX);
    }

    proptest! {
        #[test]
        fn whatever_parses_prints_back_the_same(raw in "[ -~]{0,80}") {
            let host = "111111111111.dkr.ecr.us-east-1.amazonaws.com/";
            for candidate in [raw.clone(), format!("{host}{raw}")] {
                if let Ok(parsed) = candidate.parse::<ImageRef>() {
                    prop_assert_eq!(parsed.to_string(), candidate.clone());
                    prop_assert!(parsed.tag.is_some() || parsed.digest.is_some());
                }
            }
        }

        #[test]
        fn every_group_name_has_a_valid_central_repository(raw in "[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?") {
            if let Ok(group) = raw.parse::<GroupName>() {
                let repository = central_repository(&group);
                prop_assert_eq!(repository.as_str().parse::<RepositoryName>(), Ok(repository.clone()));
            }
        }
    }
}
