//! SageMaker hosting (models, endpoint configs, endpoints) and the runtime that invokes them.

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_sagemaker::types::{
    Alarm, AutoRollbackConfig, BlueGreenUpdatePolicy, CapacitySize, CapacitySizeType, ContainerDefinition, DeploymentConfig,
    EndpointStatus as SdkStatus, ProductionVariant, ProductionVariantInstanceType, TrafficRoutingConfig, TrafficRoutingConfigType,
};
use aws_sdk_sagemaker::Client;
use aws_smithy_types::Blob;

use crate::domain::deploy::BlueGreen;
use crate::ports::{EndpointConfigSpec, EndpointState, EndpointStatus, Endpoints, FailureKind, InvokeResult, ModelSpec, PortResult};

use super::classify;

const VARIANT: &str = "AllTraffic";

pub struct SageMakerEndpoints {
    client: Client,
    runtime: aws_sdk_sagemakerruntime::Client,
}

impl SageMakerEndpoints {
    pub fn new(config: &SdkConfig) -> Self {
        Self { client: Client::new(config), runtime: aws_sdk_sagemakerruntime::Client::new(config) }
    }

    #[cfg(test)]
    fn from_clients(client: Client, runtime: aws_sdk_sagemakerruntime::Client) -> Self {
        Self { client, runtime }
    }
}

/// Creation that finds the resource already there is success: names are deterministic.
fn tolerate_existing(result: PortResult<()>) -> PortResult<()> {
    match result {
        Err(error) if error.kind != FailureKind::Conflict && !error.message.contains("already exist") && !error.message.contains("Cannot create already existing") => Err(error),
        _ => Ok(()),
    }
}

fn status(raw: &SdkStatus) -> EndpointStatus {
    match raw {
        SdkStatus::Creating => EndpointStatus::Creating,
        SdkStatus::Updating => EndpointStatus::Updating,
        SdkStatus::RollingBack => EndpointStatus::RollingBack,
        SdkStatus::InService => EndpointStatus::InService,
        SdkStatus::Failed => EndpointStatus::Failed,
        other => EndpointStatus::Other(other.as_str().to_owned()),
    }
}

/// Blue/green with a canary (or all at once), rolled back automatically when an alarm fires.
pub fn deployment_config(blue_green: &BlueGreen) -> DeploymentConfig {
    let routing = match blue_green.canary_percent {
        Some(percent) => TrafficRoutingConfig::builder()
            .r#type(TrafficRoutingConfigType::Canary)
            .canary_size(CapacitySize::builder().r#type(CapacitySizeType::CapacityPercent).value(i32::try_from(percent).unwrap_or(100)).build())
            .wait_interval_in_seconds(i32::try_from(blue_green.canary_wait_seconds).unwrap_or(i32::MAX))
            .build(),
        None => TrafficRoutingConfig::builder().r#type(TrafficRoutingConfigType::AllAtOnce).wait_interval_in_seconds(0).build(),
    };
    let policy = BlueGreenUpdatePolicy::builder()
        .traffic_routing_configuration(routing)
        .termination_wait_in_seconds(i32::try_from(blue_green.termination_wait_seconds).unwrap_or(i32::MAX))
        .build();
    let alarms = blue_green.alarms.iter().map(|name| Alarm::builder().alarm_name(name).build()).collect();
    DeploymentConfig::builder()
        .blue_green_update_policy(policy)
        .auto_rollback_configuration(AutoRollbackConfig::builder().set_alarms(Some(alarms)).build())
        .build()
}

#[async_trait]
impl Endpoints for SageMakerEndpoints {
    async fn ensure_model(&self, spec: &ModelSpec<'_>) -> PortResult<()> {
        let created = self
            .client
            .create_model()
            .model_name(spec.name)
            .execution_role_arn(spec.execution_role_arn)
            .primary_container(ContainerDefinition::builder().model_package_name(spec.package.as_str()).build())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("CreateModel", &e));
        tolerate_existing(created)
    }

    async fn ensure_endpoint_config(&self, spec: &EndpointConfigSpec<'_>) -> PortResult<()> {
        let variant = ProductionVariant::builder()
            .variant_name(VARIANT)
            .model_name(spec.model_name)
            .instance_type(ProductionVariantInstanceType::from(spec.instance_type))
            .initial_instance_count(i32::try_from(spec.instance_count).unwrap_or(1))
            .build();
        let created = self
            .client
            .create_endpoint_config()
            .endpoint_config_name(spec.name)
            .production_variants(variant)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("CreateEndpointConfig", &e));
        tolerate_existing(created)
    }

    async fn describe_endpoint(&self, name: &str) -> PortResult<Option<EndpointState>> {
        match self.client.describe_endpoint().endpoint_name(name).send().await {
            Ok(out) => Ok(Some(EndpointState {
                status: out.endpoint_status().map_or(EndpointStatus::Other("unknown".into()), status),
                config_name: out.endpoint_config_name().unwrap_or_default().to_owned(),
                failure_reason: out.failure_reason().map(str::to_owned),
            })),
            Err(e) => {
                let error = classify("DescribeEndpoint", &e);
                let missing = error.kind == FailureKind::NotFound || error.message.contains("Could not find endpoint");
                if missing { Ok(None) } else { Err(error) }
            }
        }
    }

    async fn create_endpoint(&self, name: &str, config: &str) -> PortResult<()> {
        self.client
            .create_endpoint()
            .endpoint_name(name)
            .endpoint_config_name(config)
            .send()
            .await
            .map_err(|e| classify("CreateEndpoint", &e))?;
        Ok(())
    }

    async fn update_endpoint(&self, name: &str, config: &str, blue_green: Option<&BlueGreen>) -> PortResult<()> {
        self.client
            .update_endpoint()
            .endpoint_name(name)
            .endpoint_config_name(config)
            .set_deployment_config(blue_green.map(deployment_config))
            .send()
            .await
            .map_err(|e| classify("UpdateEndpoint", &e))?;
        Ok(())
    }

    async fn delete_endpoint(&self, name: &str) -> PortResult<()> {
        self.client.delete_endpoint().endpoint_name(name).send().await.map_err(|e| classify("DeleteEndpoint", &e))?;
        Ok(())
    }

    async fn invoke(&self, name: &str, content_type: &str, payload: &[u8], inference_id: &str) -> PortResult<InvokeResult> {
        let request = self.runtime.invoke_endpoint().endpoint_name(name).content_type(content_type).inference_id(inference_id);
        match request.body(Blob::new(payload)).send().await {
            Ok(out) => Ok(InvokeResult { status: 200, body: out.body().map(|b| b.as_ref().to_vec()).unwrap_or_default() }),
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                let error = classify("InvokeEndpoint", &e);
                match status {
                    // The model answered with an error: a test outcome, not a failure to test.
                    Some(status) if error.kind != FailureKind::Retryable => Ok(InvokeResult { status, body: error.message.into_bytes() }),
                    _ => Err(error),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_sagemaker::operation::update_endpoint::UpdateEndpointOutput;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    use super::*;

    #[tokio::test]
    async fn a_prod_update_is_blue_green_with_a_canary_and_alarm_rollback() {
        let rule = mock!(Client::update_endpoint)
            .match_requests(|r| {
                let config = r.deployment_config().unwrap();
                let policy = config.blue_green_update_policy().unwrap();
                let routing = policy.traffic_routing_configuration().unwrap();
                let alarms: Vec<_> = config.auto_rollback_configuration().unwrap().alarms().iter().filter_map(|a| a.alarm_name()).collect();
                r.endpoint_name() == Some("churn-prod")
                    && r.endpoint_config_name() == Some("churn-v2-prod")
                    && routing.r#type() == Some(&TrafficRoutingConfigType::Canary)
                    && routing.canary_size().and_then(|c| c.value()) == Some(10)
                    && policy.termination_wait_in_seconds() == Some(600)
                    && alarms == ["churn-prod-5xx", "churn-prod-latency"]
            })
            .then_output(|| UpdateEndpointOutput::builder().endpoint_arn("arn").build());
        let client = mock_client!(aws_sdk_sagemaker, RuleMode::Sequential, [&rule]);
        let runtime = aws_sdk_sagemakerruntime::Client::from_conf(aws_sdk_sagemakerruntime::Config::builder().behavior_version_latest().region(aws_sdk_sagemakerruntime::config::Region::new("us-east-1")).build());
        let endpoints = SageMakerEndpoints::from_clients(client, runtime);
        let blue_green = BlueGreen {
            alarms: vec!["churn-prod-5xx".into(), "churn-prod-latency".into()],
            canary_percent: Some(10),
            canary_wait_seconds: 300,
            termination_wait_seconds: 600,
        };

        endpoints.update_endpoint("churn-prod", "churn-v2-prod", Some(&blue_green)).await.unwrap();

        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_test_update_has_no_deployment_config() {
        let rule = mock!(Client::update_endpoint)
            .match_requests(|r| r.deployment_config().is_none() && r.endpoint_config_name() == Some("churn-v1-test"))
            .then_output(|| UpdateEndpointOutput::builder().endpoint_arn("arn").build());
        let client = mock_client!(aws_sdk_sagemaker, RuleMode::Sequential, [&rule]);
        let runtime = aws_sdk_sagemakerruntime::Client::from_conf(aws_sdk_sagemakerruntime::Config::builder().behavior_version_latest().region(aws_sdk_sagemakerruntime::config::Region::new("us-east-1")).build());

        SageMakerEndpoints::from_clients(client, runtime).update_endpoint("churn-test", "churn-v1-test", None).await.unwrap();

        assert_eq!(rule.num_calls(), 1);
    }
}
