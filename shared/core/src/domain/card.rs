//! The central model card: one card per central version. A card per group showed the approver of
//! v1 the content of v2, and v1 reaching prod marked v2's card Approved.

use serde_json::{json, Map, Value};

use super::fingerprint::ReleaseFingerprint;
use super::ids::{GroupName, ModelPackageArn, SAGEMAKER_NAME_MAX};
use super::ledger::CopiedArtifact;
use super::naming::hex_sha256;
use super::package::{ArtifactSlot, InferenceSpec};

/// A metrics file larger than this is linked from the card, not inlined.
pub const METRICS_READ_MAX: u64 = 1024 * 1024;

pub struct CardInput<'a> {
    pub group: &'a GroupName,
    pub source: &'a ModelPackageArn,
    pub central: &'a ModelPackageArn,
    pub event_id: &'a str,
    pub promoted_at: &'a str,
    pub inference: &'a InferenceSpec,
    pub artifacts: &'a [CopiedArtifact],
    pub metrics: Option<MetricGroups>,
    pub fingerprint: &'a ReleaseFingerprint,
}

/// `{central group}-v{version}`; a group too long for that keeps a readable prefix and a hash of
/// the whole group name, within SageMaker's 63 characters.
pub fn card_name(central: &ModelPackageArn) -> String {
    let group = central.group().as_str();
    let suffix = format!("-v{}", central.version());
    if group.len() + suffix.len() <= SAGEMAKER_NAME_MAX {
        return format!("{group}{suffix}");
    }
    let hash = &hex_sha256(group.as_bytes())[..8];
    let keep = SAGEMAKER_NAME_MAX - suffix.len() - hash.len() - 1;
    format!("{}-{hash}{suffix}", group[..keep].trim_end_matches('-'))
}

/// Content in SageMaker's model card JSON schema.
pub fn card_content(input: &CardInput<'_>) -> Value {
    let model_artifacts: Vec<String> =
        input.artifacts.iter().filter(|a| matches!(a.slot, ArtifactSlot::ModelData { .. })).map(|a| a.central.to_string()).collect();
    let images: Vec<&str> = input.inference.containers.iter().map(|c| c.image.as_str()).collect();
    let mut custom = Map::new();
    custom.insert("source_model_package_arn".into(), json!(input.source.to_string()));
    custom.insert("source_account".into(), json!(input.source.account().to_string()));
    custom.insert("source_version".into(), json!(input.source.version().to_string()));
    custom.insert("promotion_event_id".into(), json!(input.event_id));
    custom.insert("promoted_at".into(), json!(input.promoted_at));
    custom.insert("release_fingerprint".into(), json!(input.fingerprint));
    for artifact in input.artifacts {
        custom.insert(format!("sha256 {}", artifact.slot), json!(artifact.sha256));
    }
    let mut content = json!({
        "model_overview": {
            "model_description": format!(
                "{} version {}, promoted from account {}",
                input.source.group(), input.source.version(), input.source.account()
            ),
            "model_creator": input.source.account().to_string(),
            "model_version": input.central.version(),
            "model_artifact": model_artifacts,
            "inference_environment": { "container_image": images },
        },
        "model_package_details": {
            "model_package_arn": input.central.to_string(),
            "model_package_group_name": input.group.to_string(),
            "model_package_description": super::naming::central_description(input.source),
            "model_approval_status": "PendingManualApproval",
        },
        "additional_information": { "custom_details": custom },
    });
    if let Some(metrics) = &input.metrics {
        content["evaluation_details"] = json!([{
            "name": format!("{} version {} model quality", input.source.group(), input.source.version()),
            "evaluation_observation": "Metrics reported by the training pipeline in the dev account.",
            "metric_groups": metrics.0,
        }]);
    }
    content
}

/// The central version a card's content describes: a card already at this version needs no update.
pub fn described_version(content: &Value) -> Option<&str> {
    content.pointer("/model_package_details/model_package_arn")?.as_str()
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricGroups(pub Vec<Value>);

/// Reads SageMaker's evaluation/statistics report shape (`{"regression_metrics": {"mse":
/// {"value": 4.6}}}`) into card metric groups; anything else yields nothing to show.
pub fn metric_groups(report: &[u8]) -> Option<MetricGroups> {
    let report: Value = serde_json::from_slice(report).ok()?;
    let groups: Vec<Value> = report
        .as_object()?
        .iter()
        .filter(|(name, _)| name.ends_with("_metrics"))
        .filter_map(|(name, metrics)| {
            let data: Vec<Value> = metrics
                .as_object()?
                .iter()
                .filter_map(|(metric, body)| {
                    let value = body.get("value").and_then(Value::as_f64).or_else(|| body.as_f64())?;
                    Some(json!({ "name": metric, "type": "number", "value": value }))
                })
                .collect();
            (!data.is_empty()).then(|| json!({ "name": name, "metric_data": data }))
        })
        .collect();
    (!groups.is_empty()).then_some(MetricGroups(groups))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::is_sagemaker_name;

    #[test]
    fn every_central_version_has_a_card_of_its_own_within_sagemakers_limit() {
        let central = |group: &str, version: u32| ModelPackageArn::new("us-east-1", &"222222222222".parse().unwrap(), &group.parse().unwrap(), version);
        assert_eq!(card_name(&central("churn-prediction-111111111111", 3)), "churn-prediction-111111111111-v3");
        assert_ne!(card_name(&central("churn-prediction-111111111111", 3)), card_name(&central("churn-prediction-111111111111", 4)));
        let long = "g".repeat(50) + "-111111111111";
        let (a, b) = (card_name(&central(&long, 12345)), card_name(&central(&("h".repeat(50) + "-111111111111"), 12345)));
        assert!(a.len() <= SAGEMAKER_NAME_MAX && is_sagemaker_name(&a) && a.ends_with("-v12345"), "{a}");
        assert_ne!(a, b, "long groups keep apart by their hash");
    }

    #[test]
    fn evaluation_reports_become_metric_groups() {
        let report = br#"{"regression_metrics": {"mse": {"value": 4.5, "standard_deviation": 0.1}, "r2": 0.91}, "notes": "x"}"#;
        let MetricGroups(groups) = metric_groups(report).unwrap();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0]["name"], "regression_metrics");
        assert_eq!(groups[0]["metric_data"][0], json!({"name": "mse", "type": "number", "value": 4.5}));
        assert_eq!(groups[0]["metric_data"][1]["value"], 0.91);
    }

    #[test]
    fn unreadable_reports_show_nothing() {
        assert_eq!(metric_groups(b"not json"), None);
        assert_eq!(metric_groups(br#"{"other": 1}"#), None);
    }
}
