//! A model package version as the registry describes it, free of SDK types.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::event::ApprovalStatus;
use super::ids::{GroupName, ModelPackageArn, S3Uri};

/// Where in a package an S3 artifact is named. The central copy keeps the same place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ArtifactSlot {
    ModelData { container: usize },
    Metrics(Report),
    DriftBaseline(Report),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Report {
    ModelQualityStatistics,
    ModelQualityConstraints,
    ModelDataQualityStatistics,
    ModelDataQualityConstraints,
    BiasReport,
    BiasPreTrainingReport,
    BiasPostTrainingReport,
    BiasConfigFile,
    BiasPreTrainingConstraints,
    BiasPostTrainingConstraints,
    ExplainabilityReport,
    ExplainabilityConstraints,
    ExplainabilityConfigFile,
}

impl Report {
    const ALL: [Report; 13] = [
        Self::ModelQualityStatistics,
        Self::ModelQualityConstraints,
        Self::ModelDataQualityStatistics,
        Self::ModelDataQualityConstraints,
        Self::BiasReport,
        Self::BiasPreTrainingReport,
        Self::BiasPostTrainingReport,
        Self::BiasConfigFile,
        Self::BiasPreTrainingConstraints,
        Self::BiasPostTrainingConstraints,
        Self::ExplainabilityReport,
        Self::ExplainabilityConstraints,
        Self::ExplainabilityConfigFile,
    ];

    fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }

    fn name(self) -> &'static str {
        match self {
            Self::ModelQualityStatistics => "model-quality-statistics",
            Self::ModelQualityConstraints => "model-quality-constraints",
            Self::ModelDataQualityStatistics => "model-data-quality-statistics",
            Self::ModelDataQualityConstraints => "model-data-quality-constraints",
            Self::BiasReport => "bias-report",
            Self::BiasPreTrainingReport => "bias-pre-training-report",
            Self::BiasPostTrainingReport => "bias-post-training-report",
            Self::BiasConfigFile => "bias-config-file",
            Self::BiasPreTrainingConstraints => "bias-pre-training-constraints",
            Self::BiasPostTrainingConstraints => "bias-post-training-constraints",
            Self::ExplainabilityReport => "explainability-report",
            Self::ExplainabilityConstraints => "explainability-constraints",
            Self::ExplainabilityConfigFile => "explainability-config-file",
        }
    }
}

impl fmt::Display for ArtifactSlot {
    /// A path segment: stable, readable, and unique within a package.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ModelData { container } => write!(f, "model/{container}"),
            Self::Metrics(report) => write!(f, "metrics/{}", report.name()),
            Self::DriftBaseline(report) => write!(f, "baselines/{}", report.name()),
        }
    }
}

impl TryFrom<String> for ArtifactSlot {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        let parsed = match raw.split_once('/') {
            Some(("model", index)) => index.parse().ok().map(|container| Self::ModelData { container }),
            Some(("metrics", name)) => Report::named(name).map(Self::Metrics),
            Some(("baselines", name)) => Report::named(name).map(Self::DriftBaseline),
            _ => None,
        };
        parsed.ok_or_else(|| format!("unknown artifact slot `{raw}`"))
    }
}

impl From<ArtifactSlot> for String {
    fn from(slot: ArtifactSlot) -> String {
        slot.to_string()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    pub slot: ArtifactSlot,
    pub uri: S3Uri,
    pub content_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Container {
    pub image: String,
    pub image_digest: Option<String>,
    pub framework: Option<String>,
    pub framework_version: Option<String>,
    pub environment: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct InferenceSpec {
    pub containers: Vec<Container>,
    pub content_types: Vec<String>,
    pub response_types: Vec<String>,
    pub realtime_instance_types: Vec<String>,
    pub transform_instance_types: Vec<String>,
}

/// A registered package version, read from a registry.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisteredPackage {
    pub arn: ModelPackageArn,
    pub description: Option<String>,
    pub status: Option<ApprovalStatus>,
    pub inference: InferenceSpec,
    pub artifacts: Vec<Artifact>,
    pub customer_metadata: BTreeMap<String, String>,
}

/// What to register in the central group.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPackage {
    pub group: GroupName,
    pub description: String,
    pub inference: InferenceSpec,
    pub artifacts: Vec<Artifact>,
    pub customer_metadata: BTreeMap<String, String>,
    /// Makes a retried create idempotent where the registry honours it.
    pub client_token: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_read_back_from_their_names() {
        let slots = [ArtifactSlot::ModelData { container: 3 }]
            .into_iter()
            .chain(Report::ALL.into_iter().flat_map(|r| [ArtifactSlot::Metrics(r), ArtifactSlot::DriftBaseline(r)]));
        for slot in slots {
            assert_eq!(ArtifactSlot::try_from(slot.to_string()), Ok(slot));
        }
        assert!(ArtifactSlot::try_from("metrics/unknown".to_owned()).is_err());
    }
}
