//! SageMaker hosting (models, endpoint configs, endpoints) and the runtime that invokes them.

use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_sagemaker::client::Waiters;
use aws_sdk_sagemaker::error::ProvideErrorMetadata;
use aws_sdk_sagemaker::operation::describe_endpoint::{DescribeEndpointError, DescribeEndpointOutput};
use aws_sdk_sagemaker::types::{
    Alarm, AutoRollbackConfig, BlueGreenUpdatePolicy, CapacitySize, CapacitySizeType, ContainerDefinition, DeploymentConfig, EndpointStatus as SdkStatus,
    ProductionVariant, ProductionVariantInstanceType, TrafficRoutingConfig, TrafficRoutingConfigType,
};
use aws_sdk_sagemaker::Client;
use aws_sdk_sagemakerruntime::operation::invoke_endpoint::InvokeEndpointError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::waiters::error::WaiterError;
use aws_smithy_runtime_api::client::waiters::FinalPoll;
use aws_smithy_types::Blob;

use promotion_core::domain::deploy::BlueGreen;
use promotion_core::ports::{
    EndpointConfigSpec, EndpointState, EndpointStatus, Endpoints, FailureKind, InvokeResult, ModelSpec, PortError, PortResult, Settled,
};

use crate::errors::classify;

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
        Err(error)
            if error.kind != FailureKind::Conflict && !error.message.contains("already exist") && !error.message.contains("Cannot create already existing") =>
        {
            Err(error)
        }
        _ => Ok(()),
    }
}

fn status(raw: &SdkStatus) -> EndpointStatus {
    match raw {
        SdkStatus::Creating => EndpointStatus::Creating,
        SdkStatus::Updating => EndpointStatus::Updating,
        SdkStatus::RollingBack => EndpointStatus::RollingBack,
        SdkStatus::SystemUpdating => EndpointStatus::SystemUpdating,
        SdkStatus::InService => EndpointStatus::InService,
        SdkStatus::Failed => EndpointStatus::Failed,
        SdkStatus::Deleting => EndpointStatus::Deleting,
        other => EndpointStatus::Other(other.as_str().to_owned()),
    }
}

fn state_of(out: &DescribeEndpointOutput) -> EndpointState {
    EndpointState {
        status: out.endpoint_status().map_or(EndpointStatus::Other("unknown".into()), status),
        config_name: out.endpoint_config_name().unwrap_or_default().to_owned(),
        failure_reason: out.failure_reason().map(str::to_owned),
        resolved_images: out
            .production_variants()
            .iter()
            .flat_map(|variant| variant.deployed_images())
            .filter_map(|image| image.resolved_image().map(str::to_owned))
            .collect(),
    }
}

/// `Ok` when `error` says the endpoint does not exist (SageMaker's ValidationException), else the error.
fn absent(error: PortError) -> PortResult<()> {
    if error.kind == FailureKind::NotFound || error.message.contains("Could not find endpoint") || error.message.contains("ValidationException") {
        Ok(())
    } else {
        Err(error)
    }
}

type Waited =
    Result<FinalPoll<DescribeEndpointOutput, SdkError<DescribeEndpointError, HttpResponse>>, WaiterError<DescribeEndpointOutput, DescribeEndpointError>>;

/// How one of the SDK's endpoint waiters ended: on its last describe (in service, or Failed), on
/// the endpoint gone (SageMaker's ValidationException), or with its bound run out.
fn settled(waited: Waited) -> PortResult<Settled> {
    let gone = |error: PortError| absent(error).map(|()| Settled::Absent);
    match waited {
        Ok(poll) => match poll.into_result() {
            Ok(out) => Ok(Settled::As(state_of(&out))),
            Err(e) => gone(classify("DescribeEndpoint", &e)),
        },
        Err(WaiterError::FailureState(failure)) => match failure.into_final_poll().into_result() {
            Ok(out) => Ok(Settled::As(state_of(&out))),
            Err(e) => gone(PortError::new("DescribeEndpoint", FailureKind::Terminal, format!("{}: {e}", e.code().unwrap_or("error")))),
        },
        Err(WaiterError::ExceededMaxWait(_)) => Ok(Settled::StillChanging),
        Err(WaiterError::OperationFailed(failed)) => gone(classify("DescribeEndpoint", failed.error())),
        Err(other) => Err(PortError::new("DescribeEndpoint", FailureKind::Terminal, format!("the waiter did not start: {other:?}"))),
    }
}

/// The answer of the model's own container, which SageMaker reports as a ModelError (HTTP 424,
/// with the container's status and body): a test outcome, not a failure to test. Every other
/// error (refused, invalid, throttled) is SageMaker's and says nothing of the model.
fn model_answer(error: &SdkError<InvokeEndpointError, HttpResponse>) -> Option<InvokeResult> {
    let SdkError::ServiceError(service) = error else {
        return None;
    };
    let InvokeEndpointError::ModelError(model) = service.err() else {
        return None;
    };
    let status = model.original_status_code().and_then(|s| u16::try_from(s).ok()).unwrap_or_else(|| service.raw().status().as_u16());
    Some(InvokeResult { status, body: model.original_message().unwrap_or_default().as_bytes().to_vec() })
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
    /// Network-isolated: the model's container can make no network call, in or out (SageMaker
    /// still fetches its image and model data with the execution role). The stage accounts'
    /// deploy role may create a model only so (a `sagemaker:NetworkIsolation` condition).
    async fn ensure_model(&self, spec: &ModelSpec<'_>) -> PortResult<()> {
        let created = self
            .client
            .create_model()
            .model_name(spec.name)
            .execution_role_arn(spec.execution_role_arn)
            .primary_container(ContainerDefinition::builder().model_package_name(spec.package.as_str()).build())
            .enable_network_isolation(true)
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
            Ok(out) => Ok(Some(state_of(&out))),
            Err(e) => absent(classify("DescribeEndpoint", &e)).map(|()| None),
        }
    }

    async fn wait_until_in_service(&self, name: &str, bound: Duration) -> PortResult<Settled> {
        settled(self.client.wait_until_endpoint_in_service().endpoint_name(name).wait(bound).await)
    }

    async fn wait_until_deleted(&self, name: &str, bound: Duration) -> PortResult<Settled> {
        settled(self.client.wait_until_endpoint_deleted().endpoint_name(name).wait(bound).await)
    }

    async fn create_endpoint(&self, name: &str, config: &str) -> PortResult<()> {
        self.client.create_endpoint().endpoint_name(name).endpoint_config_name(config).send().await.map_err(|e| classify("CreateEndpoint", &e))?;
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
            Err(e) => model_answer(&e).ok_or_else(|| classify("InvokeEndpoint", &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_sagemaker::operation::update_endpoint::UpdateEndpointOutput;
    use aws_smithy_mocks::{mock, RuleMode};

    use super::*;

    #[test]
    fn a_described_endpoint_reports_the_images_its_instances_resolved() {
        use aws_sdk_sagemaker::types::{DeployedImage, ProductionVariantSummary};
        let image = |resolved: &str| DeployedImage::builder().specified_image("repo:1").resolved_image(resolved).build();
        let variant =
            ProductionVariantSummary::builder().variant_name(VARIANT).deployed_images(image("repo@sha256:aa")).deployed_images(image("side@sha256:bb")).build();
        let out = DescribeEndpointOutput::builder().endpoint_status(SdkStatus::InService).endpoint_config_name("c").production_variants(variant).build();

        assert_eq!(state_of(&out).resolved_images, ["repo@sha256:aa", "side@sha256:bb"]);
    }

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
        let runtime = aws_sdk_sagemakerruntime::Client::from_conf(
            aws_sdk_sagemakerruntime::Config::builder().behavior_version_latest().region(aws_sdk_sagemakerruntime::config::Region::new("us-east-1")).build(),
        );
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
    async fn a_model_is_created_network_isolated_from_its_central_version() {
        use aws_sdk_sagemaker::operation::create_model::CreateModelOutput;
        let package = "arn:aws:sagemaker:us-east-1:222222222222:model-package/churn-111111111111/3";
        let rule = mock!(Client::create_model)
            .match_requests(move |r| {
                r.model_name() == Some("promoted-churn-v3-prod")
                    && r.enable_network_isolation() == Some(true)
                    && r.primary_container().and_then(|c| c.model_package_name()) == Some(package)
            })
            .then_output(|| CreateModelOutput::builder().model_arn("arn").build());
        let client = mock_client!(aws_sdk_sagemaker, RuleMode::Sequential, [&rule]);
        let runtime = mock_client!(aws_sdk_sagemakerruntime, RuleMode::Sequential, Vec::<&aws_smithy_mocks::Rule>::new());
        let spec = ModelSpec {
            name: "promoted-churn-v3-prod",
            execution_role_arn: "arn:aws:iam::444444444444:role/model-promotion-sagemaker-execution",
            package: &package.parse().unwrap(),
        };

        SageMakerEndpoints::from_clients(client, runtime).ensure_model(&spec).await.unwrap();

        assert_eq!(rule.num_calls(), 1, "CreateModel asked for network isolation");
    }

    #[tokio::test]
    async fn a_test_update_has_no_deployment_config() {
        let rule = mock!(Client::update_endpoint)
            .match_requests(|r| r.deployment_config().is_none() && r.endpoint_config_name() == Some("churn-v1-test"))
            .then_output(|| UpdateEndpointOutput::builder().endpoint_arn("arn").build());
        let client = mock_client!(aws_sdk_sagemaker, RuleMode::Sequential, [&rule]);
        let runtime = aws_sdk_sagemakerruntime::Client::from_conf(
            aws_sdk_sagemakerruntime::Config::builder().behavior_version_latest().region(aws_sdk_sagemakerruntime::config::Region::new("us-east-1")).build(),
        );

        SageMakerEndpoints::from_clients(client, runtime).update_endpoint("churn-test", "churn-v1-test", None).await.unwrap();

        assert_eq!(rule.num_calls(), 1);
    }

    /// Hosting whose runtime answers every InvokeEndpoint with `status` and the JSON `body`, once.
    fn invoked_answering(status: u16, body: serde_json::Value) -> (SageMakerEndpoints, aws_smithy_mocks::Rule) {
        let rule = mock!(aws_sdk_sagemakerruntime::Client::invoke_endpoint).sequence().http_status(status, Some(body.to_string())).build();
        let runtime = mock_client!(aws_sdk_sagemakerruntime, RuleMode::Sequential, [&rule], |config| {
            config.retry_config(aws_sdk_sagemakerruntime::config::retry::RetryConfig::disabled())
        });
        let client = mock_client!(aws_sdk_sagemaker, RuleMode::Sequential, Vec::<&aws_smithy_mocks::Rule>::new());
        (SageMakerEndpoints::from_clients(client, runtime), rule)
    }

    #[tokio::test]
    async fn a_model_error_is_the_containers_answer_with_its_own_status_and_body() {
        let (endpoints, rule) = invoked_answering(
            424,
            serde_json::json!({
                "__type": "ModelError",
                "Message": "Received server error (500) from primary with message \"boom\"",
                "OriginalStatusCode": 500,
                "OriginalMessage": "{\"error\": \"boom\"}",
                "LogStreamArn": "arn:aws:logs:us-east-1:333333333333:log-group:/aws/sagemaker/Endpoints/churn-test",
            }),
        );

        let answer = endpoints.invoke("churn-test", "text/csv", b"1,2", "job-0").await.unwrap();

        assert_eq!(answer, InvokeResult { status: 500, body: br#"{"error": "boom"}"#.to_vec() });
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_refused_invocation_is_a_terminal_error_and_no_answer_of_the_model() {
        let denied = serde_json::json!({ "__type": "AccessDeniedException", "message": "not authorized to perform sagemaker:InvokeEndpoint" });
        let invalid = serde_json::json!({ "__type": "ValidationError", "Message": "Endpoint churn-test of account 333333333333 not found." });

        for (status, body, code) in [(403, denied, "AccessDeniedException"), (400, invalid, "ValidationError")] {
            let (endpoints, _rule) = invoked_answering(status, body);

            let error = endpoints.invoke("churn-test", "text/csv", b"1,2", "job-0").await.unwrap_err();

            assert_eq!((error.operation, error.kind), ("InvokeEndpoint", FailureKind::Terminal), "{error}");
            assert!(error.message.contains(code), "{error}");
        }
    }

    #[tokio::test]
    async fn a_throttled_or_loading_endpoint_is_a_retryable_error() {
        let throttled = serde_json::json!({ "__type": "ThrottlingException", "message": "Rate exceeded" });
        let loading = serde_json::json!({ "__type": "ModelNotReadyException", "Message": "Model is still loading" });

        for (status, body) in [(400, throttled), (429, loading)] {
            let (endpoints, _rule) = invoked_answering(status, body);

            let error = endpoints.invoke("churn-test", "text/csv", b"1,2", "job-0").await.unwrap_err();

            assert_eq!((error.operation, error.kind), ("InvokeEndpoint", FailureKind::Retryable), "{error}");
        }
    }

    #[tokio::test]
    async fn an_endpoint_being_deleted_or_patched_by_sagemaker_says_so() {
        use aws_sdk_sagemaker::operation::describe_endpoint::DescribeEndpointOutput;
        let describe = |status: SdkStatus| {
            mock!(Client::describe_endpoint).then_output(move || {
                DescribeEndpointOutput::builder()
                    .endpoint_name("churn-prod")
                    .endpoint_arn("arn")
                    .endpoint_config_name("churn-v1-prod")
                    .endpoint_status(status.clone())
                    .creation_time(aws_smithy_types::DateTime::from_secs(0))
                    .last_modified_time(aws_smithy_types::DateTime::from_secs(0))
                    .build()
            })
        };
        let (deleting, patching) = (describe(SdkStatus::Deleting), describe(SdkStatus::SystemUpdating));
        let client = mock_client!(aws_sdk_sagemaker, RuleMode::Sequential, [&deleting, &patching]);
        let runtime = mock_client!(aws_sdk_sagemakerruntime, RuleMode::Sequential, Vec::<&aws_smithy_mocks::Rule>::new());
        let endpoints = SageMakerEndpoints::from_clients(client, runtime);

        let first = endpoints.describe_endpoint("churn-prod").await.unwrap().unwrap();
        let second = endpoints.describe_endpoint("churn-prod").await.unwrap().unwrap();

        assert_eq!((first.status.clone(), first.status.is_transitional()), (EndpointStatus::Deleting, false));
        assert_eq!((second.status.clone(), second.status.is_transitional()), (EndpointStatus::SystemUpdating, true));
    }
    #[tokio::test(start_paused = true)]
    async fn the_waiters_poll_until_the_endpoint_is_in_service_and_until_it_is_gone() {
        use aws_sdk_sagemaker::operation::describe_endpoint::DescribeEndpointOutput;
        use aws_smithy_types::error::ErrorMetadata;
        let describe = |status: SdkStatus, config: &'static str| {
            mock!(Client::describe_endpoint).match_requests(|r| r.endpoint_name() == Some("churn-prod")).then_output(move || {
                DescribeEndpointOutput::builder()
                    .endpoint_name("churn-prod")
                    .endpoint_arn("arn")
                    .endpoint_config_name(config)
                    .endpoint_status(status.clone())
                    .creation_time(aws_smithy_types::DateTime::from_secs(0))
                    .last_modified_time(aws_smithy_types::DateTime::from_secs(0))
                    .build()
            })
        };
        let (updating, in_service, deleting) =
            (describe(SdkStatus::Updating, "churn-v1-prod"), describe(SdkStatus::InService, "churn-v2-prod"), describe(SdkStatus::Deleting, "churn-v2-prod"));
        let gone = mock!(Client::describe_endpoint).then_error(|| {
            DescribeEndpointError::generic(ErrorMetadata::builder().code("ValidationException").message("Could not find endpoint \"churn-prod\".").build())
        });
        let client = mock_client!(aws_sdk_sagemaker, RuleMode::Sequential, [&updating, &in_service, &deleting, &gone]);
        let runtime = mock_client!(aws_sdk_sagemakerruntime, RuleMode::Sequential, Vec::<&aws_smithy_mocks::Rule>::new());
        let endpoints = SageMakerEndpoints::from_clients(client, runtime);

        let settled = endpoints.wait_until_in_service("churn-prod", Duration::from_secs(600)).await.unwrap();
        let deleted = endpoints.wait_until_deleted("churn-prod", Duration::from_secs(600)).await.unwrap();

        let running = EndpointState { status: EndpointStatus::InService, config_name: "churn-v2-prod".into(), failure_reason: None, resolved_images: vec![] };
        assert_eq!((settled, deleted), (Settled::As(running), Settled::Absent));
        assert_eq!([updating.num_calls(), in_service.num_calls(), deleting.num_calls(), gone.num_calls()], [1, 1, 1, 1]);
    }
}
