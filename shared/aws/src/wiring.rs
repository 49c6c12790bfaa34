//! The one place every function's ports are built from the environment.

use std::sync::Arc;

use aws_config::SdkConfig;
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::tls::Provider;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use promotion_core::config::{ConfigError, PromoteConfig};
use promotion_core::deployment::{DeployConfig, DeployPorts};
use promotion_core::domain::ids::AccountId;
use promotion_core::domain::operator::Operator;
use promotion_core::ports::PromotePorts;

use crate::{codepipeline, dynamodb, ecr, eventbridge, s3, sagemaker, sns, sts};

/// Loads the SDK configuration from the environment: region, credentials, `AWS_ENDPOINT_URL`
/// and the retry settings (`AWS_MAX_ATTEMPTS`, `AWS_RETRY_MODE`; standard mode backs off with jitter).
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(https_client()).load().await
}

/// The one HTTP client of every SDK client, the functions' and the CLI's: hyper 1 with rustls
/// over ring (the SDK's default would add aws-lc, a second crypto backend, and with its legacy
/// features a second TLS stack). The SDK crates are built without a default client.
pub fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https()
}

/// The ledger table, with the audit table where its audit entries go.
pub fn ledger(sdk: &SdkConfig, ledger_table: &str, audit_table: &str, central_account: &AccountId) -> dynamodb::DynamoLedger {
    let client = aws_sdk_dynamodb::Client::new(sdk);
    dynamodb::DynamoLedger::new(client.clone(), ledger_table, dynamodb::AuditTable::new(client, audit_table, central_account))
}

/// promote-model's wiring: configuration from the environment, clients, ports.
pub async fn promote_from_env() -> Result<(PromotePorts, PromoteConfig), ConfigError> {
    let config = PromoteConfig::from_env()?;
    let sdk = load_sdk_config().await;
    Ok((promote_ports(&sdk, &config), config))
}

pub fn promote_ports(sdk: &SdkConfig, config: &PromoteConfig) -> PromotePorts {
    let sagemaker = aws_sdk_sagemaker::Client::new(sdk);
    let ledger = Arc::new(ledger(sdk, &config.ledger_table, &config.audit_table, &config.central_account));
    PromotePorts {
        sessions: Arc::new(sts::SourceRegistries::new(sdk.clone(), &config.source_read_role)),
        central_registry: Arc::new(sagemaker::SageMakerRegistry::new(sagemaker.clone())),
        central_images: Arc::new(ecr::EcrImages::new(aws_sdk_ecr::Client::new(sdk))),
        artifacts: Arc::new(s3::S3Artifacts::new(s3::client(sdk), &config.central_account, &config.kms_key_id)),
        cards: Arc::new(sagemaker::SageMakerCards::new(sagemaker)),
        events: Arc::new(eventbridge::EventBus::new(aws_sdk_eventbridge::Client::new(sdk), &config.event_bus)),
        ledger: ledger.clone(),
        audit: ledger.clone(),
        approver_records: ledger,
    }
}

/// The deployment functions' wiring: configuration from the environment, clients, ports.
pub async fn deploy_from_env() -> Result<(DeployPorts, DeployConfig), ConfigError> {
    let config = DeployConfig::from_env()?;
    let sdk = load_sdk_config().await;
    Ok((deploy_ports(&sdk, &config), config))
}

pub fn deploy_ports(sdk: &SdkConfig, config: &DeployConfig) -> DeployPorts {
    let sagemaker = aws_sdk_sagemaker::Client::new(sdk);
    let pipeline = Arc::new(codepipeline::CodePipeline::new(aws_sdk_codepipeline::Client::new(sdk)));
    // One ledger in its five roles.
    let ledger = Arc::new(ledger(sdk, &config.ledger_table, &config.audit_table, &config.central_account));
    DeployPorts {
        stages: Arc::new(sts::RoleSessions::new(sdk.clone())),
        central_registry: Arc::new(sagemaker::SageMakerRegistry::new(sagemaker.clone())),
        jobs: pipeline.clone(),
        runs: pipeline,
        promotions: ledger.clone(),
        audit: ledger.clone(),
        deployments: ledger.clone(),
        starts: ledger.clone(),
        tests: ledger.clone(),
        approver_records: ledger,
        artifacts: Arc::new(s3::S3Artifacts::new(s3::client(sdk), &config.central_account, &config.kms_key_id)),
        cards: Arc::new(sagemaker::SageMakerCards::new(sagemaker)),
        approvers: Arc::new(sns::Topic::new(aws_sdk_sns::Client::new(sdk), &config.approval_topic_arn)),
    }
}

/// promote-model's ports for an operator's replay (`promote invoke`): the dev registries read in
/// sessions that carry the operator, every audit entry naming them.
pub fn operator_promote_ports(sdk: &SdkConfig, config: &PromoteConfig, operator: &Operator) -> PromotePorts {
    let ports = PromotePorts {
        sessions: Arc::new(sts::SourceRegistries::for_operator(sdk.clone(), &config.source_read_role, operator.clone())),
        ..promote_ports(sdk, config)
    };
    promotion_core::operator::promote_ports_for(&ports, operator)
}

/// The deployment ports for an operator's command (`promote rollback|approve|reject|invoke`): the
/// stage accounts' deploy roles assumed in sessions that carry the operator, every audit entry
/// naming them.
pub fn operator_deploy_ports(sdk: &SdkConfig, config: &DeployConfig, operator: &Operator) -> DeployPorts {
    let ports = DeployPorts { stages: Arc::new(sts::RoleSessions::for_operator(sdk.clone(), operator.clone())), ..deploy_ports(sdk, config) };
    promotion_core::operator::deploy_ports_for(&ports, operator)
}
