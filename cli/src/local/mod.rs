//! The local AWS of the design, on moto's server: four accounts, the central resources and a
//! dev registry holding one trained model version. Tests and `make demo` provision alike.

mod artifacts;
mod events;
mod images;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use anyhow::{Context as _, Result};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockRetentionMode, ObjectLockRule};
use aws_sdk_sagemaker::types::{
    DriftCheckBaselines, DriftCheckModelQuality, InferenceSpecification, MetricsSource, ModelApprovalStatus, ModelMetrics, ModelPackageContainerDefinition,
    ModelQuality,
};
use promotion_aws::dynamodb::{PARTITION_KEY, SORT_KEY};
use promotion_core::config::PromoteConfig;
use promotion_core::domain::copy::CopySettings;
use promotion_core::domain::ids::{AccountId, ModelPackageArn};
use serde::Deserialize;

pub use artifacts::model_archive;
pub use events::{approval_call_event, approval_event, set_dev_approval};
pub use images::{dev_repository, manifest, push_serving_image, PushedImage, SERVING_TAG};

pub const REGION: &str = "us-east-1";
pub const DEV_ACCOUNT: &str = "111111111111";
pub const CENTRAL_ACCOUNT: &str = "222222222222";
pub const TEST_ACCOUNT: &str = "333333333333";
pub const PROD_ACCOUNT: &str = "444444444444";
/// The emulator needs no such role to exist; in AWS each account has its own roles.
const LOCAL_ADMIN_ROLE: &str = "model-promotion-local-admin";
/// How long the emulator's reports stay locked: a day, since its worlds are thrown away (the
/// template's `EvidenceRetentionDays` sets it in AWS).
pub const LOCAL_EVIDENCE_RETENTION_DAYS: u32 = 1;

/// The names the templates' parameter defaults use too: `infra/check_drift.py` holds the
/// templates to this file, and the tests below hold the code's own constants to it.
#[derive(Debug, Deserialize)]
pub struct ServiceNames {
    pub event_bus: String,
    pub event_source: String,
    pub promoted_detail_type: String,
    pub revoked_detail_type: String,
    pub ledger_table: String,
    pub ledger_key: LedgerKey,
    pub audit_table: String,
    pub artifact_bucket_prefix: String,
    pub evidence_bucket_prefix: String,
    pub approval_topic: String,
    pub pipeline: String,
    pub hosting_name_prefix: String,
    pub roles: BTreeMap<String, String>,
    pub image_repository_prefix: String,
    pub aws_image_registries: Vec<String>,
    pub model_data_key_pattern: String,
}

#[derive(Debug, Deserialize)]
pub struct LedgerKey {
    pub hash: String,
    pub range: String,
}

pub fn service_names() -> &'static ServiceNames {
    static NAMES: OnceLock<ServiceNames> = OnceLock::new();
    NAMES.get_or_init(|| serde_json::from_str(include_str!("../../../infra/names.json")).expect("infra/names.json is valid"))
}

/// Resource names; tests add a suffix so that each test has a world of its own.
#[derive(Debug, Clone)]
pub struct Names {
    pub artifact_bucket: String,
    /// Test reports, under Object Lock.
    pub evidence_bucket: String,
    pub dev_bucket: String,
    pub ledger_table: String,
    pub audit_table: String,
    pub event_bus: String,
    pub events_queue: String,
    pub approval_topic: String,
    /// A queue subscribed to the approval topic, standing in for the officers' mailboxes.
    pub approvals_inbox: String,
    pub dev_group: String,
    /// A second model of the dev team, for the demo's scenario whose tests fail.
    pub second_dev_group: String,
}

impl Names {
    pub fn with_suffix(suffix: &str) -> Self {
        let tail = if suffix.is_empty() { String::new() } else { format!("-{suffix}") };
        let service = service_names();
        Self {
            artifact_bucket: format!("{}-{CENTRAL_ACCOUNT}{tail}", service.artifact_bucket_prefix),
            evidence_bucket: format!("{}-{CENTRAL_ACCOUNT}{tail}", service.evidence_bucket_prefix),
            dev_bucket: format!("dev-ml-artifacts-{DEV_ACCOUNT}{tail}"),
            ledger_table: format!("{}{tail}", service.ledger_table),
            audit_table: format!("{}{tail}", service.audit_table),
            event_bus: format!("{}{tail}", service.event_bus),
            events_queue: format!("{}-events{tail}", service.event_bus),
            approval_topic: format!("{}{tail}", service.approval_topic),
            approvals_inbox: format!("{}-inbox{tail}", service.approval_topic),
            dev_group: format!("churn-prediction{tail}"),
            second_dev_group: format!("fraud-detection{tail}"),
        }
    }
}

/// Credentials acting in one account of the emulator.
pub async fn account_config(endpoint: &str, account: &str) -> Result<SdkConfig> {
    let bootstrap = aws_config::defaults(BehaviorVersion::latest())
        .http_client(promotion_aws::wiring::https_client())
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(aws_sdk_sts::config::Credentials::new("local", "local", None, None, "local"))
        .load()
        .await;
    session_in(&bootstrap, account).await
}

/// A session in `account`, assumed from `base`.
pub async fn session_in(base: &SdkConfig, account: &str) -> Result<SdkConfig> {
    assumed(
        base,
        aws_sdk_sts::Client::new(base)
            .assume_role()
            .role_arn(format!("arn:aws:iam::{account}:role/{LOCAL_ADMIN_ROLE}"))
            .role_session_name("model-promotion-local"),
    )
    .await
}

/// A person of the local world: their role in their account, their name, as STS knows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Person {
    pub account: &'static str,
    pub role: &'static str,
    /// Their session name and source identity (what an identity provider would set).
    pub name: &'static str,
}

/// The lead data scientist who approves in dev.
pub const DATA_SCIENTIST: Person = Person { account: DEV_ACCOUNT, role: "data-scientist", name: "dana" };
/// The ML engineer who approves central versions.
pub const ML_ENGINEER: Person = Person { account: CENTRAL_ACCOUNT, role: "ml-engineer", name: "erik" };

/// `person`'s own session, assumed from `base` with their name as session name and source identity.
pub async fn session_of(base: &SdkConfig, person: Person) -> Result<SdkConfig> {
    let request = aws_sdk_sts::Client::new(base)
        .assume_role()
        .role_arn(format!("arn:aws:iam::{}:role/{}", person.account, person.role))
        .role_session_name(person.name)
        .source_identity(person.name);
    assumed(base, request).await
}

async fn assumed(base: &SdkConfig, request: aws_sdk_sts::operation::assume_role::builders::AssumeRoleFluentBuilder) -> Result<SdkConfig> {
    let assumed = request.send().await.context("assume role in the emulator")?;
    let creds = assumed.credentials().context("no credentials")?;
    let credentials =
        aws_sdk_sts::config::Credentials::new(creds.access_key_id(), creds.secret_access_key(), Some(creds.session_token().to_owned()), None, "emulator");
    Ok(base.to_builder().credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(credentials)).build())
}

pub struct World {
    pub endpoint: String,
    pub central: SdkConfig,
    pub dev: SdkConfig,
    pub names: Names,
    pub config: PromoteConfig,
    pub dev_package: ModelPackageArn,
    pub second_dev_package: ModelPackageArn,
    /// The dev versions' serving images, pushed to the dev registry and replicated.
    pub serving_images: Vec<PushedImage>,
    pub events_queue_url: String,
    pub approval_topic_arn: String,
    pub approvals_inbox_url: String,
}

impl World {
    /// The environment a shell needs to act as the central account, as `export` lines.
    pub async fn env_file(&self) -> Result<String> {
        use aws_credential_types::provider::ProvideCredentials;
        let provider = self.central.credentials_provider().context("no central credentials")?;
        let creds = provider.provide_credentials().await?;
        let sources: Vec<String> = self.config.source_accounts.iter().map(|(account, buckets)| format!("{account}={}", buckets.join(","))).collect();
        let vars = [
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", creds.access_key_id().to_owned()),
            ("AWS_SECRET_ACCESS_KEY", creds.secret_access_key().to_owned()),
            ("AWS_SESSION_TOKEN", creds.session_token().unwrap_or_default().to_owned()),
            ("AWS_MAX_ATTEMPTS", "3".to_owned()),
            ("DEV_ACCOUNT_ID", DEV_ACCOUNT.to_owned()),
            ("CENTRAL_ACCOUNT_ID", CENTRAL_ACCOUNT.to_owned()),
            ("TEST_ACCOUNT_ID", TEST_ACCOUNT.to_owned()),
            ("PROD_ACCOUNT_ID", PROD_ACCOUNT.to_owned()),
            ("SOURCE_ACCOUNTS", sources.join(";")),
            ("SOURCE_READ_ROLE_NAME", self.config.source_read_role.clone()),
            ("ARTIFACT_BUCKET", self.config.artifact_bucket.clone()),
            ("ARTIFACT_KMS_KEY_ID", self.config.kms_key_id.clone()),
            ("LEDGER_TABLE", self.config.ledger_table.clone()),
            ("AUDIT_TABLE", self.config.audit_table.clone()),
            ("EVENT_BUS_NAME", self.config.event_bus.clone()),
            ("EVENTS_QUEUE_URL", self.events_queue_url.clone()),
            ("DEV_MODEL_PACKAGE_ARN", self.dev_package.to_string()),
            ("DEV_SECOND_MODEL_PACKAGE_ARN", self.second_dev_package.to_string()),
            ("STAGE_CONFIG", serde_json::from_str::<serde_json::Value>(promotion_core::config::LOCAL_STAGE_CONFIG)?.to_string()),
            ("PIPELINE_NAME", service_names().pipeline.clone()),
            ("EVIDENCE_BUCKET", self.names.evidence_bucket.clone()),
            ("EVIDENCE_RETENTION_DAYS", LOCAL_EVIDENCE_RETENTION_DAYS.to_string()),
            ("APPROVAL_TOPIC_ARN", self.approval_topic_arn.clone()),
            ("APPROVALS_INBOX_URL", self.approvals_inbox_url.clone()),
            ("PROMOTE_LOCAL_PIPELINE", ".local/pipeline-state.json".to_owned()),
        ];
        Ok(vars.iter().map(|(name, value)| format!("export {name}='{value}'\n")).collect())
    }
}

pub async fn provision(endpoint: &str, names: Names, copy: CopySettings) -> Result<World> {
    let central = account_config(endpoint, CENTRAL_ACCOUNT).await?;
    let dev = account_config(endpoint, DEV_ACCOUNT).await?;
    let kms_key_id = central_key(&central).await?;
    create_bucket(&central, &names.artifact_bucket).await?;
    create_evidence_bucket(&central, &names.evidence_bucket, LOCAL_EVIDENCE_RETENTION_DAYS).await?;
    create_table(&central, &names.ledger_table).await?;
    create_table(&central, &names.audit_table).await?;
    let events_queue_url = central_bus(&central, &names).await?;
    let (approval_topic_arn, approvals_inbox_url) = approval_topic(&central, &names).await?;
    create_bucket(&dev, &names.dev_bucket).await?;
    let (dev_package, image) = trained_model_version(&dev, &names, &names.dev_group, 3).await?;
    let (second_dev_package, second_image) = trained_model_version(&dev, &names, &names.second_dev_group, 1).await?;
    let config = PromoteConfig {
        central_account: CENTRAL_ACCOUNT.parse()?,
        source_accounts: BTreeMap::from([(DEV_ACCOUNT.parse::<AccountId>()?, vec![names.dev_bucket.clone()])]),
        source_read_role: service_names().roles["source_read"].clone(),
        artifact_bucket: names.artifact_bucket.clone(),
        kms_key_id,
        ledger_table: names.ledger_table.clone(),
        audit_table: names.audit_table.clone(),
        event_bus: names.event_bus.clone(),
        copy,
        aws_image_registries: Default::default(),
    };
    Ok(World {
        endpoint: endpoint.to_owned(),
        central,
        dev,
        names,
        config,
        dev_package,
        second_dev_package,
        serving_images: vec![image, second_image],
        events_queue_url,
        approval_topic_arn,
        approvals_inbox_url,
    })
}

async fn central_key(central: &SdkConfig) -> Result<String> {
    let key = aws_sdk_kms::Client::new(central).create_key().description("model promotion artifacts (local)").send().await.context("create KMS key")?;
    Ok(key.key_metadata().context("no key metadata")?.key_id().to_owned())
}

pub async fn create_bucket(account: &SdkConfig, bucket: &str) -> Result<()> {
    promotion_aws::s3::client(account).create_bucket().bucket(bucket).send().await.with_context(|| format!("create bucket {bucket}"))?;
    Ok(())
}

/// The evidence bucket as the central template makes it: Object Lock enabled at creation (which
/// turns versioning on), every new version locked in compliance mode for `days` by default.
pub async fn create_evidence_bucket(central: &SdkConfig, bucket: &str, days: u32) -> Result<()> {
    let s3 = promotion_aws::s3::client(central);
    s3.create_bucket().bucket(bucket).object_lock_enabled_for_bucket(true).send().await.with_context(|| format!("create bucket {bucket}"))?;
    let retention = DefaultRetention::builder().mode(ObjectLockRetentionMode::Compliance).days(i32::try_from(days)?).build();
    let lock = ObjectLockConfiguration::builder()
        .object_lock_enabled(ObjectLockEnabled::Enabled)
        .rule(ObjectLockRule::builder().default_retention(retention).build())
        .build();
    s3.put_object_lock_configuration().bucket(bucket).object_lock_configuration(lock).send().await.with_context(|| format!("lock bucket {bucket}"))?;
    Ok(())
}

/// The ledger or the audit table: both keyed `pk`, `sk` (strings).
async fn create_table(central: &SdkConfig, table: &str) -> Result<()> {
    let attribute = |name: &str| AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build();
    let key = |name: &str, kind| KeySchemaElement::builder().attribute_name(name).key_type(kind).build();
    aws_sdk_dynamodb::Client::new(central)
        .create_table()
        .table_name(table)
        .attribute_definitions(attribute(PARTITION_KEY)?)
        .attribute_definitions(attribute(SORT_KEY)?)
        .key_schema(key(PARTITION_KEY, KeyType::Hash)?)
        .key_schema(key(SORT_KEY, KeyType::Range)?)
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .with_context(|| format!("create table {table}"))?;
    Ok(())
}

/// The central bus, with a queue subscribed to the service's own events so they can be read back.
async fn central_bus(central: &SdkConfig, names: &Names) -> Result<String> {
    let events = aws_sdk_eventbridge::Client::new(central);
    let sqs = aws_sdk_sqs::Client::new(central);
    events.create_event_bus().name(&names.event_bus).send().await.context("create event bus")?;
    let queue_url = sqs.create_queue().queue_name(&names.events_queue).send().await?.queue_url().context("no queue url")?.to_owned();
    let queue_arn = format!("arn:aws:sqs:{REGION}:{CENTRAL_ACCOUNT}:{}", names.events_queue);
    let rule = format!("{}-to-queue", names.events_queue);
    events
        .put_rule()
        .name(&rule)
        .event_bus_name(&names.event_bus)
        .event_pattern(serde_json::json!({ "source": [promotion_aws::eventbridge::EVENT_SOURCE] }).to_string())
        .send()
        .await
        .context("create rule")?;
    events
        .put_targets()
        .rule(&rule)
        .event_bus_name(&names.event_bus)
        .targets(aws_sdk_eventbridge::types::Target::builder().id("queue").arn(queue_arn).build()?)
        .send()
        .await
        .context("add queue target")?;
    Ok(queue_url)
}

/// The topic of the prod approval, with a queue subscribed where a test or the demo reads it.
async fn approval_topic(central: &SdkConfig, names: &Names) -> Result<(String, String)> {
    let sns = aws_sdk_sns::Client::new(central);
    let sqs = aws_sdk_sqs::Client::new(central);
    let topic = sns.create_topic().name(&names.approval_topic).send().await.context("create topic")?;
    let topic_arn = topic.topic_arn().context("no topic arn")?.to_owned();
    let inbox = sqs.create_queue().queue_name(&names.approvals_inbox).send().await?.queue_url().context("no queue url")?.to_owned();
    let inbox_arn = format!("arn:aws:sqs:{REGION}:{CENTRAL_ACCOUNT}:{}", names.approvals_inbox);
    sns.subscribe()
        .topic_arn(&topic_arn)
        .protocol("sqs")
        .endpoint(inbox_arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .context("subscribe the inbox")?;
    Ok((topic_arn, inbox))
}

/// Uploads `body` with a SHA-256 checksum, as training jobs do; returns its `s3://` URI.
pub async fn put_object(account: &SdkConfig, bucket: &str, key: &str, body: Vec<u8>) -> Result<String> {
    promotion_aws::s3::client(account)
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .send()
        .await
        .with_context(|| format!("upload s3://{bucket}/{key}"))?;
    Ok(format!("s3://{bucket}/{key}"))
}

/// A trained model version in the dev registry: a real archive of a few MB, its evaluation
/// report and a drift baseline, registered PendingManualApproval as a training pipeline would,
/// running a serving image of the dev registry.
async fn trained_model_version(dev: &SdkConfig, names: &Names, group: &str, megabytes: usize) -> Result<(ModelPackageArn, PushedImage)> {
    let prefix = format!("{group}/pipelines-7f3k/output");
    let model = put_object(dev, &names.dev_bucket, &format!("{prefix}/model.tar.gz"), model_archive(megabytes)?).await?;
    let evaluation = put_object(dev, &names.dev_bucket, &format!("{prefix}/evaluation/evaluation.json"), artifacts::evaluation_report()).await?;
    let constraints = put_object(dev, &names.dev_bucket, &format!("{prefix}/baseline/constraints.json"), artifacts::baseline_constraints()).await?;
    let image = push_serving_image(dev, group, "1", SERVING_TAG).await?;
    Ok((register_running(dev, group, &model, Some((&evaluation, &constraints)), &image).await?, image))
}

/// Registers a dev model version naming `model_data` and, optionally, an evaluation report and
/// constraints; it runs the group's serving image (pushed unless it is there).
pub async fn register_version(dev: &SdkConfig, group: &str, model_data: &str, reports: Option<(&str, &str)>) -> Result<ModelPackageArn> {
    let image = push_serving_image(dev, group, "1", SERVING_TAG).await?;
    register_running(dev, group, model_data, reports, &image).await
}

/// Registers a dev model version whose container runs `image`, with the digest SageMaker records
/// (`ImageDigest`) when it resolves the image at registration; moto resolves nothing, so the
/// digest moto reported for the push is recorded here.
pub async fn register_running(dev: &SdkConfig, group: &str, model_data: &str, reports: Option<(&str, &str)>, image: &PushedImage) -> Result<ModelPackageArn> {
    let sagemaker = aws_sdk_sagemaker::Client::new(dev);
    if sagemaker.describe_model_package_group().model_package_group_name(group).send().await.is_err() {
        sagemaker.create_model_package_group().model_package_group_name(group).send().await.context("create dev group")?;
    }
    let source = |uri: &str| MetricsSource::builder().content_type("application/json").s3_uri(uri).build();
    let container = ModelPackageContainerDefinition::builder().image(&image.image).image_digest(&image.digest).model_data_url(model_data).build();
    let created = sagemaker
        .create_model_package()
        .model_package_group_name(group)
        .model_approval_status(ModelApprovalStatus::PendingManualApproval)
        .inference_specification(
            InferenceSpecification::builder().containers(container).supported_content_types("text/csv").supported_response_mime_types("text/csv").build(),
        )
        .set_model_metrics(
            reports.map(|(evaluation, _)| ModelMetrics::builder().model_quality(ModelQuality::builder().statistics(source(evaluation)).build()).build()),
        )
        .set_drift_check_baselines(reports.map(|(_, constraints)| {
            DriftCheckBaselines::builder().model_quality(DriftCheckModelQuality::builder().constraints(source(constraints)).build()).build()
        }))
        .send()
        .await
        .context("register dev model version")?;
    Ok(created.model_package_arn().context("no package arn")?.parse()?)
}

/// Queues replies of `InvokeEndpoint` in `account` (moto's endpoint-results call): the local
/// stand-in for a model answering.
pub async fn queue_endpoint_results(endpoint: &str, account: &str, results: &[serde_json::Value]) -> Result<()> {
    let body = serde_json::json!({ "account_id": account, "region": REGION, "results": results }).to_string();
    let address = endpoint.trim_start_matches("http://").to_owned();
    let request = format!(
        "POST /moto-api/static/sagemaker/endpoint-results HTTP/1.0\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let reply = tokio::task::spawn_blocking(move || -> Result<String> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&address)?;
        stream.write_all(request.as_bytes())?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply)?;
        Ok(reply)
    })
    .await??;
    let accepted = reply.split(' ').nth(1).is_some_and(|status| status.starts_with('2'));
    anyhow::ensure!(accepted, "moto refused the endpoint results: {reply}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_names_what_the_templates_name() {
        let names = service_names();
        assert_eq!(promotion_aws::eventbridge::EVENT_SOURCE, names.event_source);
        assert_eq!(promotion_core::promotion::PROMOTED_DETAIL_TYPE, names.promoted_detail_type);
        assert_eq!(promotion_core::domain::revocation::REVOKED_DETAIL_TYPE, names.revoked_detail_type);
        assert_eq!(promotion_core::config::DEFAULT_SOURCE_READ_ROLE, names.roles["source_read"]);
        assert_eq!(promotion_core::config::DEFAULT_OPERATOR_ROLLBACK_ROLE, names.roles["operator_rollback"]);
        assert_eq!(promotion_core::domain::deploy::HOSTING_NAME_PREFIX, names.hosting_name_prefix);
        assert_eq!((PARTITION_KEY, SORT_KEY), (names.ledger_key.hash.as_str(), names.ledger_key.range.as_str()));
        assert_eq!(promotion_core::domain::image::CENTRAL_REPOSITORY_PREFIX, names.image_repository_prefix);
        assert_eq!(promotion_core::domain::image::DEFAULT_AWS_IMAGE_REGISTRIES, names.aws_image_registries);
    }

    /// The stage execution roles may read the central objects matching names.json's
    /// model_data_key_pattern (an IAM pattern, `*{part}*`: the keys holding `part`): every
    /// container's model data, and none of the version's reports and baselines.
    #[test]
    fn the_model_data_pattern_admits_the_model_data_and_no_other_artifact() {
        use promotion_core::domain::ids::S3Uri;
        use promotion_core::domain::naming::{central_artifact_uri, central_group_name};
        use promotion_core::domain::package::{ArtifactSlot, Report};
        let pattern = &service_names().model_data_key_pattern;
        let part = pattern.strip_prefix('*').and_then(|p| p.strip_suffix('*')).expect("a pattern *{part}*");
        assert!(!part.contains(['*', '?']), "{pattern}: one literal part");
        let source: ModelPackageArn = "arn:aws:sagemaker:us-east-1:111111111111:model-package/model/3".parse().unwrap();
        let original: S3Uri = "s3://dev-ml-artifacts-111111111111/model/output/model.tar.gz".parse().unwrap();
        let key =
            |slot| central_artifact_uri("model-promotion-artifacts-222222222222", &central_group_name(&source), &source, slot, &original).key().to_owned();

        for container in [0, 1] {
            assert!(key(ArtifactSlot::ModelData { container }).contains(part), "{}", key(ArtifactSlot::ModelData { container }));
        }
        for slot in [ArtifactSlot::Metrics(Report::ModelQualityStatistics), ArtifactSlot::DriftBaseline(Report::ModelDataQualityConstraints)] {
            assert!(!key(slot).contains(part), "{}", key(slot));
        }
    }
}
