//! The release fingerprint: one SHA-256 over a canonical form of everything that decides what a
//! version runs (images by digest, every model-data object's key, size and checksum, the
//! environment, the inference settings). Computed at promotion, recomputed before every stage
//! deployment: equal fingerprints mean the same bytes run.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::ids::S3Uri;
use super::ledger::CopiedArtifact;
use super::package::{ArtifactSlot, InferenceSpec};

/// One model-data object as stored in the central bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelDataObject<'a> {
    /// The container whose model data it is.
    pub container: usize,
    pub uri: &'a S3Uri,
    pub size: u64,
    /// The SHA-256 S3 keeps for the object (base64, `…-N` when composed from N parts).
    pub sha256: &'a str,
}

impl<'a> ModelDataObject<'a> {
    /// The model-data objects among a promotion's copies.
    pub fn of_copies(artifacts: &'a [CopiedArtifact]) -> Vec<Self> {
        let model_data = |a: &'a CopiedArtifact| match a.slot {
            ArtifactSlot::ModelData { container } => Some(Self { container, uri: &a.central, size: a.size, sha256: &a.sha256 }),
            _ => None,
        };
        artifacts.iter().filter_map(model_data).collect()
    }
}

/// The canonical form: fixed field order, maps sorted, lists that are sets sorted, no floats and
/// no time, so equal releases give equal bytes wherever they are computed.
#[derive(Serialize)]
struct Canonical<'a> {
    form: u8,
    containers: Vec<CanonicalContainer<'a>>,
    content_types: Vec<&'a str>,
    response_types: Vec<&'a str>,
    realtime_instance_types: Vec<&'a str>,
    transform_instance_types: Vec<&'a str>,
}

#[derive(Serialize)]
struct CanonicalContainer<'a> {
    /// The image as registered: by digest once pinned, so the digest is in the fingerprint.
    image: &'a str,
    framework: Option<&'a str>,
    framework_version: Option<&'a str>,
    environment: &'a BTreeMap<String, String>,
    model_data: Vec<CanonicalObject<'a>>,
}

#[derive(Serialize)]
struct CanonicalObject<'a> {
    key: String,
    size: u64,
    sha256: &'a str,
}

/// The fingerprint of what a version runs: its inference specification as registered and the
/// objects its containers load. Metrics and baselines describe the version; they do not run.
pub fn release_fingerprint(inference: &InferenceSpec, model_data: &[ModelDataObject<'_>]) -> ReleaseFingerprint {
    let containers = inference
        .containers
        .iter()
        .enumerate()
        .map(|(index, container)| {
            let mut objects: Vec<CanonicalObject> = model_data
                .iter()
                .filter(|object| object.container == index)
                .map(|object| CanonicalObject { key: object.uri.to_string(), size: object.size, sha256: object.sha256 })
                .collect();
            objects.sort_by(|a, b| a.key.cmp(&b.key));
            CanonicalContainer {
                image: &container.image,
                framework: container.framework.as_deref(),
                framework_version: container.framework_version.as_deref(),
                environment: &container.environment,
                model_data: objects,
            }
        })
        .collect();
    let canonical = Canonical {
        form: 1,
        containers,
        content_types: sorted(&inference.content_types),
        response_types: sorted(&inference.response_types),
        realtime_instance_types: sorted(&inference.realtime_instance_types),
        transform_instance_types: sorted(&inference.transform_instance_types),
    };
    ReleaseFingerprint::of(&serde_json::to_vec(&canonical).expect("the canonical form serializes"))
}

/// `sha256:` and 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ReleaseFingerprint(String);

const PREFIX: &str = "sha256:";

impl ReleaseFingerprint {
    /// The fingerprint of a canonical form's bytes.
    pub fn of(canonical: &[u8]) -> Self {
        Self(format!("{PREFIX}{}", super::naming::hex_sha256(canonical)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first hex digits, enough for a person to compare two fingerprints at a glance.
    pub fn short(&self) -> &str {
        &self.0[PREFIX.len()..PREFIX.len() + 12]
    }
}

impl fmt::Display for ReleaseFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl FromStr for ReleaseFingerprint {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        let hex = raw.strip_prefix(PREFIX).ok_or_else(|| format!("a release fingerprint starts with {PREFIX}"))?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(format!("a release fingerprint is {PREFIX} and 64 lowercase hex digits, not `{}`", super::ids::truncated(raw)));
        }
        Ok(Self(raw.to_owned()))
    }
}

impl TryFrom<String> for ReleaseFingerprint {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        raw.parse()
    }
}

impl From<ReleaseFingerprint> for String {
    fn from(fingerprint: ReleaseFingerprint) -> String {
        fingerprint.0
    }
}

fn sorted(values: &[String]) -> Vec<&str> {
    let mut sorted: Vec<&str> = values.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::package::Container;

    fn spec() -> InferenceSpec {
        InferenceSpec {
            containers: vec![Container {
                image: "222222222222.dkr.ecr.us-east-1.amazonaws.com/churn@sha256:aa".into(),
                environment: BTreeMap::from([("A".into(), "1".into()), ("B".into(), "2".into())]),
                ..Container::default()
            }],
            content_types: vec!["text/csv".into(), "application/json".into()],
            response_types: vec!["text/csv".into()],
            realtime_instance_types: vec!["ml.m5.large".into()],
            transform_instance_types: vec![],
        }
    }

    fn model() -> S3Uri {
        "s3://central/churn/v1/model.tar.gz".parse().unwrap()
    }

    #[test]
    fn the_fingerprint_changes_with_anything_that_runs_and_nothing_else() {
        let uri = model();
        let object = ModelDataObject { container: 0, uri: &uri, size: 10, sha256: "abc=" };
        let base = release_fingerprint(&spec(), std::slice::from_ref(&object));

        let mut reordered = spec();
        reordered.content_types.reverse();
        assert_eq!(release_fingerprint(&reordered, std::slice::from_ref(&object)), base, "a set's order changes nothing");

        let mut image = spec();
        image.containers[0].image = "222222222222.dkr.ecr.us-east-1.amazonaws.com/churn@sha256:bb".into();
        let mut environment = spec();
        environment.containers[0].environment.insert("B".into(), "3".into());
        let mut types = spec();
        types.realtime_instance_types.push("ml.g5.xlarge".into());
        for changed in [image, environment, types] {
            assert_ne!(release_fingerprint(&changed, std::slice::from_ref(&object)), base);
        }
        for other in [
            ModelDataObject { size: 11, ..object.clone() },
            ModelDataObject { sha256: "abd=", ..object.clone() },
            ModelDataObject { container: 1, ..object.clone() },
        ] {
            assert_ne!(release_fingerprint(&spec(), &[other]), base);
        }
        assert_ne!(release_fingerprint(&spec(), &[]), base, "model data left out is a change");
    }

    #[test]
    fn a_fingerprint_parses_back_and_refuses_anything_else() {
        let fingerprint = ReleaseFingerprint::of(b"canonical");
        assert_eq!(fingerprint.as_str().parse::<ReleaseFingerprint>().unwrap(), fingerprint);
        assert_eq!(fingerprint.short().len(), 12);
        for bad in ["", "sha256:", "md5:00", &fingerprint.as_str().to_uppercase(), &format!("{fingerprint}0")] {
            assert!(bad.parse::<ReleaseFingerprint>().is_err(), "{bad}");
        }
    }
}
