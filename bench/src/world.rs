//! What every measured section needs: the promote-model ports wired as the Lambda wires them,
//! with the call-counting interceptor on every client; new dev versions; one delivery.

use std::sync::Arc;

use anyhow::Result;
use async_trait::async_trait;
use aws_config::SdkConfig;
use lambda_runtime::{Context, LambdaEvent};
use promote_cli::local::register_version;
use promotion_aws::{dynamodb, ecr, eventbridge, s3, sagemaker, sts};
use promotion_core::config::PromoteConfig;
use promotion_core::domain::ids::{AccountId, ModelPackageArn};
use promotion_core::ports::{AccountSessions, ImageRegistry, ModelRegistry, PortResult, PromotePorts};
use promotion_core::promotion::{Outcome, PromoteError};
use promotion_tests::TestWorld;
use serde_json::Value;

use crate::calls::CallLog;

/// `promotion_aws::wiring::promote_ports` with `log` registered on every SDK client. The SDK
/// takes interceptors per client, not on `SdkConfig`, so the clients are built here; the
/// adapters are the Lambda's. Not counted: the dev account's `AssumeRole`, which aws-config's
/// credentials provider sends through an STS client of its own (once per world: its
/// credentials are cached afterwards).
pub fn counted_ports(sdk: &SdkConfig, config: &PromoteConfig, log: &CallLog) -> PromotePorts {
    let sagemaker = counted_sagemaker(sdk, log);
    let s3 = s3::client(sdk);
    let s3 = aws_sdk_s3::Client::from_conf(s3.config().to_builder().interceptor(log.clone()).build());
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(aws_sdk_dynamodb::config::Builder::from(sdk).interceptor(log.clone()).build());
    let events = aws_sdk_eventbridge::Client::from_conf(aws_sdk_eventbridge::config::Builder::from(sdk).interceptor(log.clone()).build());
    let audit = dynamodb::AuditTable::new(dynamodb.clone(), &config.audit_table, &config.central_account);
    let ledger = Arc::new(dynamodb::DynamoLedger::new(dynamodb, &config.ledger_table, audit));
    PromotePorts {
        sessions: Arc::new(CountedSources { sessions: sts::RoleSessions::new(sdk.clone()), role: config.source_read_role.clone(), log: log.clone() }),
        central_registry: Arc::new(sagemaker::SageMakerRegistry::new(sagemaker.clone())),
        central_images: Arc::new(ecr::EcrImages::new(counted_ecr(sdk, log))),
        artifacts: Arc::new(s3::S3Artifacts::new(s3, &config.central_account, &config.kms_key_id)),
        cards: Arc::new(sagemaker::SageMakerCards::new(sagemaker)),
        events: Arc::new(eventbridge::EventBus::new(events, &config.event_bus)),
        ledger: ledger.clone(),
        audit: ledger.clone(),
        approver_records: ledger,
    }
}

fn counted_sagemaker(sdk: &SdkConfig, log: &CallLog) -> aws_sdk_sagemaker::Client {
    aws_sdk_sagemaker::Client::from_conf(aws_sdk_sagemaker::config::Builder::from(sdk).interceptor(log.clone()).build())
}

fn counted_ecr(sdk: &SdkConfig, log: &CallLog) -> aws_sdk_ecr::Client {
    aws_sdk_ecr::Client::from_conf(aws_sdk_ecr::config::Builder::from(sdk).interceptor(log.clone()).build())
}

/// `promotion_aws::sts::SourceRegistries` with counted clients.
struct CountedSources {
    sessions: sts::RoleSessions,
    role: String,
    log: CallLog,
}

#[async_trait]
impl AccountSessions for CountedSources {
    async fn registry(&self, account: &AccountId) -> PortResult<Arc<dyn ModelRegistry>> {
        let config = self.sessions.config_for(account, &self.role).await;
        Ok(Arc::new(sagemaker::SageMakerRegistry::new(counted_sagemaker(&config, &self.log))))
    }

    async fn images(&self, account: &AccountId) -> PortResult<Arc<dyn ImageRegistry>> {
        let config = self.sessions.config_for(account, &self.role).await;
        Ok(Arc::new(ecr::EcrImages::new(counted_ecr(&config, &self.log))))
    }
}

/// The world's central ports with a fresh call log.
pub fn counted(world: &TestWorld) -> (PromotePorts, CallLog) {
    let log = CallLog::default();
    (counted_ports(world.central(), &world.world.config, &log), log)
}

/// One delivery of `event` to promote-model's handler, with a fresh request id.
pub async fn deliver(ports: &PromotePorts, config: &PromoteConfig, event: &Value) -> Result<Outcome, PromoteError> {
    let mut context = Context::default();
    context.request_id = uuid::Uuid::new_v4().to_string();
    context.deadline = (chrono::Utc::now() + chrono::Duration::minutes(15)).timestamp_millis() as u64;
    promote_model::handler(ports, config, LambdaEvent::new(event.clone(), context)).await
}

/// The artifacts of the world's trained dev version (model, evaluation, constraints), to
/// register more versions naming them.
pub fn dev_artifacts(world: &TestWorld) -> (String, String, String) {
    let prefix = format!("s3://{}/{}/pipelines-7f3k/output", world.world.names.dev_bucket, world.world.names.dev_group);
    (format!("{prefix}/model.tar.gz"), format!("{prefix}/evaluation/evaluation.json"), format!("{prefix}/baseline/constraints.json"))
}

/// A new dev version of `group` naming `model` (and the reports), approved: its forwarded event.
pub async fn new_dev_version(world: &TestWorld, group: &str, model: &str, reports: Option<(&str, &str)>) -> Result<(ModelPackageArn, Value)> {
    let arn = register_version(world.dev(), group, model, reports).await?;
    let event = world.decide(&arn, true).await;
    Ok((arn, event))
}
