//! SageMaker: the model registry (dev and central) and model cards.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_sagemaker::types::{
    Bias, DriftCheckBaselines, DriftCheckBias, DriftCheckExplainability, DriftCheckModelDataQuality, DriftCheckModelQuality, Explainability, FileSource,
    InferenceSpecification, MetricsSource, ModelApprovalStatus, ModelCardStatus, ModelDataQuality, ModelMetrics, ModelPackageContainerDefinition,
    ModelPackageSortBy, ModelQuality, ProductionVariantInstanceType, SortOrder, TransformInstanceType,
};
use aws_sdk_sagemaker::Client;
use serde_json::Value;

use promotion_core::domain::event::ApprovalStatus;
use promotion_core::domain::ids::{GroupName, ModelPackageArn, S3Uri};
use promotion_core::domain::package::{Artifact, ArtifactSlot, Container, InferenceSpec, NewPackage, RegisteredPackage, Report};
use promotion_core::ports::{CardSnapshot, CardStatus, FailureKind, ModelCards, ModelRegistry, PortError, PortResult};

use crate::errors::classify;

pub struct SageMakerRegistry {
    client: Client,
}

impl SageMakerRegistry {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl ModelRegistry for SageMakerRegistry {
    async fn describe_package(&self, arn: &ModelPackageArn) -> PortResult<RegisteredPackage> {
        let out = self.client.describe_model_package().model_package_name(arn.as_str()).send().await.map_err(|e| classify("DescribeModelPackage", &e))?;
        let described = out.model_package_arn().unwrap_or_default();
        let arn: ModelPackageArn = described.parse().map_err(|e| PortError::new("DescribeModelPackage", FailureKind::Terminal, format!("{e}")))?;
        let spec = out.inference_specification();
        let mut artifacts = Vec::new();
        for (index, container) in spec.map(InferenceSpecification::containers).unwrap_or_default().iter().enumerate() {
            if let Some(url) = container.model_data_url() {
                artifacts.push(artifact(ArtifactSlot::ModelData { container: index }, url, None)?);
            }
        }
        for (slot, content_type, uri) in metrics_sources(out.model_metrics(), out.drift_check_baselines()) {
            artifacts.push(artifact(slot, uri, content_type)?);
        }
        Ok(RegisteredPackage {
            arn,
            description: out.model_package_description().map(str::to_owned),
            status: out.model_approval_status().and_then(approval_from_sdk),
            inference: spec.map(inference_from_sdk).unwrap_or_default(),
            artifacts,
            customer_metadata: out.customer_metadata_properties().map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default(),
        })
    }

    async fn ensure_group(&self, group: &GroupName, description: &str) -> PortResult<()> {
        let described = self.client.describe_model_package_group().model_package_group_name(group.as_str()).send().await;
        match described.map_err(|e| classify("DescribeModelPackageGroup", &e)) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind == FailureKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let created =
            self.client.create_model_package_group().model_package_group_name(group.as_str()).model_package_group_description(description).send().await;
        match created.map_err(|e| classify("CreateModelPackageGroup", &e)) {
            Err(e) if e.kind != FailureKind::Conflict => Err(e),
            _ => Ok(()),
        }
    }

    async fn create_package(&self, package: &NewPackage) -> PortResult<ModelPackageArn> {
        let out = self
            .client
            .create_model_package()
            .model_package_group_name(package.group.as_str())
            .model_package_description(&package.description)
            .model_approval_status(ModelApprovalStatus::PendingManualApproval)
            .inference_specification(inference_to_sdk(&package.inference, &package.artifacts))
            .set_model_metrics(model_metrics(&package.artifacts))
            .set_drift_check_baselines(drift_baselines(&package.artifacts))
            .set_customer_metadata_properties(Some(package.customer_metadata.clone().into_iter().collect()))
            .client_token(&package.client_token)
            .send()
            .await
            .map_err(|e| classify("CreateModelPackage", &e))?;
        parse_arn("CreateModelPackage", out.model_package_arn())
    }

    async fn find_recent_by_description(&self, group: &GroupName, description: &str) -> PortResult<Option<ModelPackageArn>> {
        let out = self
            .client
            .list_model_packages()
            .model_package_group_name(group.as_str())
            .sort_by(ModelPackageSortBy::CreationTime)
            .sort_order(SortOrder::Descending)
            .max_results(100)
            .send()
            .await
            .map_err(|e| classify("ListModelPackages", &e))?;
        out.model_package_summary_list()
            .iter()
            .find(|s| s.model_package_description() == Some(description))
            .map(|s| parse_arn("ListModelPackages", s.model_package_arn()))
            .transpose()
    }

    async fn set_approval(&self, package: &RegisteredPackage, status: ApprovalStatus, reason: &str, extra_metadata: &[(&str, &str)]) -> PortResult<()> {
        let mut metadata: HashMap<String, String> = package.customer_metadata.clone().into_iter().collect();
        metadata.extend(extra_metadata.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        self.client
            .update_model_package()
            .model_package_arn(package.arn.as_str())
            .model_approval_status(approval_to_sdk(&status))
            .approval_description(reason)
            .set_customer_metadata_properties(Some(metadata))
            .send()
            .await
            .map_err(|e| classify("UpdateModelPackage", &e))?;
        Ok(())
    }
}

fn parse_arn(operation: &'static str, raw: Option<&str>) -> PortResult<ModelPackageArn> {
    raw.unwrap_or_default().parse().map_err(|e| PortError::new(operation, FailureKind::Terminal, format!("{e}")))
}

fn artifact(slot: ArtifactSlot, uri: &str, content_type: Option<&str>) -> PortResult<Artifact> {
    let uri: S3Uri = uri.parse().map_err(|e| PortError::new("DescribeModelPackage", FailureKind::Terminal, format!("{slot}: {e}")))?;
    Ok(Artifact { slot, uri, content_type: content_type.map(str::to_owned) })
}

fn approval_from_sdk(status: &ModelApprovalStatus) -> Option<ApprovalStatus> {
    match status {
        ModelApprovalStatus::Approved => Some(ApprovalStatus::Approved),
        ModelApprovalStatus::Rejected => Some(ApprovalStatus::Rejected),
        ModelApprovalStatus::PendingManualApproval => Some(ApprovalStatus::PendingManualApproval),
        _ => None,
    }
}

fn approval_to_sdk(status: &ApprovalStatus) -> ModelApprovalStatus {
    match status {
        ApprovalStatus::Approved => ModelApprovalStatus::Approved,
        ApprovalStatus::Rejected => ModelApprovalStatus::Rejected,
        ApprovalStatus::PendingManualApproval => ModelApprovalStatus::PendingManualApproval,
    }
}

fn inference_from_sdk(spec: &InferenceSpecification) -> InferenceSpec {
    InferenceSpec {
        containers: spec
            .containers()
            .iter()
            .map(|c| Container {
                image: c.image().unwrap_or_default().to_owned(),
                image_digest: c.image_digest().map(str::to_owned),
                framework: c.framework().map(str::to_owned),
                framework_version: c.framework_version().map(str::to_owned),
                environment: c.environment().map(|e| e.clone().into_iter().collect()).unwrap_or_default(),
            })
            .collect(),
        content_types: spec.supported_content_types().to_vec(),
        response_types: spec.supported_response_mime_types().to_vec(),
        realtime_instance_types: spec.supported_realtime_inference_instance_types().iter().map(|t| t.as_str().to_owned()).collect(),
        transform_instance_types: spec.supported_transform_instance_types().iter().map(|t| t.as_str().to_owned()).collect(),
    }
}

fn inference_to_sdk(spec: &InferenceSpec, artifacts: &[Artifact]) -> InferenceSpecification {
    let containers = spec.containers.iter().enumerate().map(|(index, c)| {
        let model_data = find(artifacts, ArtifactSlot::ModelData { container: index }).map(|a| a.uri.to_string());
        ModelPackageContainerDefinition::builder()
            .image(&c.image)
            .set_image_digest(c.image_digest.clone())
            .set_framework(c.framework.clone())
            .set_framework_version(c.framework_version.clone())
            .set_environment((!c.environment.is_empty()).then(|| c.environment.clone().into_iter().collect()))
            .set_model_data_url(model_data)
            .build()
    });
    InferenceSpecification::builder()
        .set_containers(Some(containers.collect()))
        .set_supported_content_types(Some(spec.content_types.clone()))
        .set_supported_response_mime_types(Some(spec.response_types.clone()))
        .set_supported_realtime_inference_instance_types(non_empty(
            spec.realtime_instance_types.iter().map(|t| ProductionVariantInstanceType::from(t.as_str())).collect(),
        ))
        .set_supported_transform_instance_types(non_empty(spec.transform_instance_types.iter().map(|t| TransformInstanceType::from(t.as_str())).collect()))
        .build()
}

fn non_empty<T>(items: Vec<T>) -> Option<Vec<T>> {
    (!items.is_empty()).then_some(items)
}

fn find(artifacts: &[Artifact], slot: ArtifactSlot) -> Option<&Artifact> {
    artifacts.iter().find(|a| a.slot == slot)
}

type Named<'a> = (ArtifactSlot, Option<&'a str>, &'a str);

/// Every report a package names, with its slot, content type and URI.
fn metrics_sources<'a>(metrics: Option<&'a ModelMetrics>, baselines: Option<&'a DriftCheckBaselines>) -> Vec<Named<'a>> {
    use Report::*;
    let source = |slot: ArtifactSlot, m: Option<&'a MetricsSource>| m.and_then(|m| Some((slot, m.content_type(), m.s3_uri()?)));
    let file = |slot: ArtifactSlot, f: Option<&'a FileSource>| f.and_then(|f| Some((slot, f.content_type(), f.s3_uri()?)));
    let metric = ArtifactSlot::Metrics;
    let baseline = ArtifactSlot::DriftBaseline;
    let mut found = Vec::new();
    if let Some(m) = metrics {
        let quality = m.model_quality();
        let data = m.model_data_quality();
        let bias = m.bias();
        found.extend([
            source(metric(ModelQualityStatistics), quality.and_then(ModelQuality::statistics)),
            source(metric(ModelQualityConstraints), quality.and_then(ModelQuality::constraints)),
            source(metric(ModelDataQualityStatistics), data.and_then(ModelDataQuality::statistics)),
            source(metric(ModelDataQualityConstraints), data.and_then(ModelDataQuality::constraints)),
            source(metric(BiasReport), bias.and_then(Bias::report)),
            source(metric(BiasPreTrainingReport), bias.and_then(Bias::pre_training_report)),
            source(metric(BiasPostTrainingReport), bias.and_then(Bias::post_training_report)),
            source(metric(ExplainabilityReport), m.explainability().and_then(Explainability::report)),
        ]);
    }
    if let Some(b) = baselines {
        let bias = b.bias();
        let explain = b.explainability();
        let quality = b.model_quality();
        let data = b.model_data_quality();
        found.extend([
            file(baseline(BiasConfigFile), bias.and_then(DriftCheckBias::config_file)),
            source(baseline(BiasPreTrainingConstraints), bias.and_then(DriftCheckBias::pre_training_constraints)),
            source(baseline(BiasPostTrainingConstraints), bias.and_then(DriftCheckBias::post_training_constraints)),
            source(baseline(ExplainabilityConstraints), explain.and_then(DriftCheckExplainability::constraints)),
            file(baseline(ExplainabilityConfigFile), explain.and_then(DriftCheckExplainability::config_file)),
            source(baseline(ModelQualityStatistics), quality.and_then(DriftCheckModelQuality::statistics)),
            source(baseline(ModelQualityConstraints), quality.and_then(DriftCheckModelQuality::constraints)),
            source(baseline(ModelDataQualityStatistics), data.and_then(DriftCheckModelDataQuality::statistics)),
            source(baseline(ModelDataQualityConstraints), data.and_then(DriftCheckModelDataQuality::constraints)),
        ]);
    }
    found.into_iter().flatten().collect()
}

fn metrics_source(artifacts: &[Artifact], slot: ArtifactSlot) -> Option<MetricsSource> {
    find(artifacts, slot)
        .map(|a| MetricsSource::builder().s3_uri(a.uri.to_string()).content_type(a.content_type.clone().unwrap_or_else(|| "application/json".into())).build())
}

fn file_source(artifacts: &[Artifact], slot: ArtifactSlot) -> Option<FileSource> {
    find(artifacts, slot).map(|a| FileSource::builder().s3_uri(a.uri.to_string()).set_content_type(a.content_type.clone()).build())
}

fn model_metrics(artifacts: &[Artifact]) -> Option<ModelMetrics> {
    use Report::*;
    let m = |report| metrics_source(artifacts, ArtifactSlot::Metrics(report));
    let quality = (m(ModelQualityStatistics), m(ModelQualityConstraints));
    let data = (m(ModelDataQualityStatistics), m(ModelDataQualityConstraints));
    let bias = (m(BiasReport), m(BiasPreTrainingReport), m(BiasPostTrainingReport));
    let explain = m(ExplainabilityReport);
    let metrics = ModelMetrics::builder()
        .set_model_quality(any2(&quality).then(|| ModelQuality::builder().set_statistics(quality.0).set_constraints(quality.1).build()))
        .set_model_data_quality(any2(&data).then(|| ModelDataQuality::builder().set_statistics(data.0).set_constraints(data.1).build()))
        .set_bias(
            (bias.0.is_some() || bias.1.is_some() || bias.2.is_some())
                .then(|| Bias::builder().set_report(bias.0).set_pre_training_report(bias.1).set_post_training_report(bias.2).build()),
        )
        .set_explainability(explain.map(|r| Explainability::builder().report(r).build()))
        .build();
    let empty = metrics.model_quality().is_none() && metrics.model_data_quality().is_none() && metrics.bias().is_none() && metrics.explainability().is_none();
    (!empty).then_some(metrics)
}

fn drift_baselines(artifacts: &[Artifact]) -> Option<DriftCheckBaselines> {
    use Report::*;
    let m = |report| metrics_source(artifacts, ArtifactSlot::DriftBaseline(report));
    let f = |report| file_source(artifacts, ArtifactSlot::DriftBaseline(report));
    let bias = (f(BiasConfigFile), m(BiasPreTrainingConstraints), m(BiasPostTrainingConstraints));
    let explain = (m(ExplainabilityConstraints), f(ExplainabilityConfigFile));
    let quality = (m(ModelQualityStatistics), m(ModelQualityConstraints));
    let data = (m(ModelDataQualityStatistics), m(ModelDataQualityConstraints));
    let baselines = DriftCheckBaselines::builder()
        .set_bias(
            (bias.0.is_some() || bias.1.is_some() || bias.2.is_some())
                .then(|| DriftCheckBias::builder().set_config_file(bias.0).set_pre_training_constraints(bias.1).set_post_training_constraints(bias.2).build()),
        )
        .set_explainability(
            (explain.0.is_some() || explain.1.is_some())
                .then(|| DriftCheckExplainability::builder().set_constraints(explain.0).set_config_file(explain.1).build()),
        )
        .set_model_quality(any2(&quality).then(|| DriftCheckModelQuality::builder().set_statistics(quality.0).set_constraints(quality.1).build()))
        .set_model_data_quality(any2(&data).then(|| DriftCheckModelDataQuality::builder().set_statistics(data.0).set_constraints(data.1).build()))
        .build();
    let empty =
        baselines.bias().is_none() && baselines.explainability().is_none() && baselines.model_quality().is_none() && baselines.model_data_quality().is_none();
    (!empty).then_some(baselines)
}

fn any2<A, B>(pair: &(Option<A>, Option<B>)) -> bool {
    pair.0.is_some() || pair.1.is_some()
}

pub struct SageMakerCards {
    client: Client,
}

impl SageMakerCards {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    async fn current_version(&self, name: &str) -> PortResult<u32> {
        let snapshot = self.describe(name).await?;
        snapshot
            .map(|s| s.version)
            .ok_or_else(|| PortError::new("DescribeModelCard", FailureKind::Retryable, format!("model card {name} vanished after a write")))
    }
}

#[async_trait]
impl ModelCards for SageMakerCards {
    async fn describe(&self, name: &str) -> PortResult<Option<CardSnapshot>> {
        let out = match self.client.describe_model_card().model_card_name(name).send().await {
            Ok(out) => out,
            Err(e) => {
                let error = classify("DescribeModelCard", &e);
                return if error.kind == FailureKind::NotFound { Ok(None) } else { Err(error) };
            }
        };
        let content: Value = serde_json::from_str(out.content().unwrap_or("{}"))
            .map_err(|e| PortError::new("DescribeModelCard", FailureKind::Terminal, format!("card {name} content: {e}")))?;
        let version = out.model_card_version().and_then(|v| u32::try_from(v).ok()).unwrap_or_default();
        Ok(Some(CardSnapshot { version, content }))
    }

    async fn create(&self, name: &str, content: &Value) -> PortResult<u32> {
        self.client
            .create_model_card()
            .model_card_name(name)
            .content(content.to_string())
            .model_card_status(ModelCardStatus::Draft)
            .send()
            .await
            .map_err(|e| classify("CreateModelCard", &e))?;
        // A card SageMaker has just created is at its first version.
        Ok(1)
    }

    async fn update(&self, name: &str, content: &Value, status: Option<CardStatus>) -> PortResult<u32> {
        self.client
            .update_model_card()
            .model_card_name(name)
            .content(content.to_string())
            .set_model_card_status(status.map(card_status))
            .send()
            .await
            .map_err(|e| classify("UpdateModelCard", &e))?;
        self.current_version(name).await
    }
}

fn card_status(status: CardStatus) -> ModelCardStatus {
    match status {
        CardStatus::Draft => ModelCardStatus::Draft,
        CardStatus::PendingReview => ModelCardStatus::Pendingreview,
        CardStatus::Approved => ModelCardStatus::Approved,
    }
}
