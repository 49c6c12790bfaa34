//! STS: sessions in other accounts through an assumed role; for an operator's command, sessions
//! that carry the operator (session name and `SourceIdentity`), and who the operator is.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use aws_config::sts::AssumeRoleProvider;
use aws_config::SdkConfig;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;

use promotion_core::domain::deploy::StageSettings;
use promotion_core::domain::ids::AccountId;
use promotion_core::domain::operator::Operator;
use promotion_core::ports::{AccountSessions, Endpoints, ImageRegistry, ModelRegistry, PortResult, StageSessions};

use crate::ecr::EcrImages;
use crate::endpoints::SageMakerEndpoints;
use crate::sagemaker::SageMakerRegistry;

const SESSION_NAME: &str = "model-promotion";

/// Assumes `arn:aws:iam::{account}:role/{role}`; credentials refresh themselves, and a warm
/// Lambda keeps one configuration per account and role.
pub struct RoleSessions {
    base: SdkConfig,
    configs: Mutex<HashMap<(AccountId, String), SdkConfig>>,
    /// The operator the sessions act for; `None` for a function's own sessions.
    operator: Option<Operator>,
}

impl RoleSessions {
    pub fn new(base: SdkConfig) -> Self {
        Self { base, configs: Mutex::new(HashMap::new()), operator: None }
    }

    /// Sessions assumed on `operator`'s behalf: named after them, and carrying them as
    /// `SourceIdentity`, so that CloudTrail in the target account names the person, not the service.
    pub fn for_operator(base: SdkConfig, operator: Operator) -> Self {
        Self { base, configs: Mutex::new(HashMap::new()), operator: Some(operator) }
    }

    pub async fn config_for(&self, account: &AccountId, role: &str) -> SdkConfig {
        let key = (account.clone(), role.to_owned());
        if let Some(config) = self.configs.lock().expect("session cache").get(&key) {
            return config.clone();
        }
        let role_arn = format!("arn:aws:iam::{account}:role/{role}");
        let provider = match &self.operator {
            Some(operator) => SharedCredentialsProvider::new(OperatorRole::new(&self.base, role_arn, operator)),
            None => SharedCredentialsProvider::new(AssumeRoleProvider::builder(role_arn).session_name(SESSION_NAME).configure(&self.base).build().await),
        };
        let config = self.base.to_builder().credentials_provider(provider).build();
        self.configs.lock().expect("session cache").insert(key, config.clone());
        config
    }
}

/// A role assumed for an operator. aws-config's `AssumeRoleProvider` sets no `SourceIdentity`, so
/// this calls `AssumeRole` itself; the SDK's identity cache keeps the credentials until they expire.
#[derive(Debug)]
struct OperatorRole {
    sts: aws_sdk_sts::Client,
    role_arn: String,
    session_name: String,
    source_identity: String,
}

impl OperatorRole {
    fn new(base: &SdkConfig, role_arn: String, operator: &Operator) -> Self {
        Self::with_client(aws_sdk_sts::Client::new(base), role_arn, operator)
    }

    fn with_client(sts: aws_sdk_sts::Client, role_arn: String, operator: &Operator) -> Self {
        Self { sts, role_arn, session_name: operator.session_name.clone(), source_identity: operator.source_identity.clone() }
    }

    async fn assume(&self) -> aws_credential_types::provider::Result {
        let assumed = self
            .sts
            .assume_role()
            .role_arn(&self.role_arn)
            .role_session_name(&self.session_name)
            .source_identity(&self.source_identity)
            .send()
            .await
            .map_err(CredentialsError::provider_error)?;
        let credentials = assumed.credentials().ok_or_else(|| CredentialsError::not_loaded("AssumeRole returned no credentials"))?;
        let expiry = SystemTime::try_from(*credentials.expiration()).ok();
        Ok(Credentials::new(credentials.access_key_id(), credentials.secret_access_key(), Some(credentials.session_token().to_owned()), expiry, "OperatorRole"))
    }
}

impl ProvideCredentials for OperatorRole {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.assume())
    }
}

/// The operator whose credentials `sdk` holds, as STS `GetCallerIdentity` names them.
pub async fn operator(sdk: &SdkConfig) -> Result<Operator, aws_sdk_sts::Error> {
    let caller = aws_sdk_sts::Client::new(sdk).get_caller_identity().send().await?;
    Ok(Operator::from_caller_arn(caller.arn().unwrap_or_default()))
}

/// Dev registries, read through the source read role.
pub struct SourceRegistries {
    sessions: RoleSessions,
    role: String,
}

impl SourceRegistries {
    pub fn new(base: SdkConfig, role: &str) -> Self {
        Self { sessions: RoleSessions::new(base), role: role.to_owned() }
    }

    /// Read on `operator`'s behalf (a replay of promote-model from the CLI).
    pub fn for_operator(base: SdkConfig, role: &str, operator: Operator) -> Self {
        Self { sessions: RoleSessions::for_operator(base, operator), role: role.to_owned() }
    }
}

#[async_trait]
impl AccountSessions for SourceRegistries {
    async fn registry(&self, account: &AccountId) -> PortResult<Arc<dyn ModelRegistry>> {
        let config = self.sessions.config_for(account, &self.role).await;
        Ok(Arc::new(SageMakerRegistry::new(aws_sdk_sagemaker::Client::new(&config))))
    }

    async fn images(&self, account: &AccountId) -> PortResult<Arc<dyn ImageRegistry>> {
        let config = self.sessions.config_for(account, &self.role).await;
        Ok(Arc::new(EcrImages::new(aws_sdk_ecr::Client::new(&config))))
    }
}

#[async_trait]
impl StageSessions for RoleSessions {
    async fn endpoints(&self, stage: &StageSettings) -> PortResult<Arc<dyn Endpoints>> {
        let config = self.config_for(&stage.account, &stage.deploy_role).await;
        Ok(Arc::new(SageMakerEndpoints::new(&config)))
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_sts::operation::assume_role::AssumeRoleOutput;
    use aws_sdk_sts::types::Credentials as StsCredentials;
    use aws_smithy_mocks::{mock, RuleMode};
    use aws_smithy_types::DateTime;

    use super::*;

    #[tokio::test]
    async fn an_operators_session_carries_them_as_source_identity_and_session_name() {
        let operator = Operator::from_caller_arn("arn:aws:sts::222222222222:assumed-role/AWSReservedSSO_MLOps_0f1e/alice@example.com");
        let rule = mock!(aws_sdk_sts::Client::assume_role)
            .match_requests(|request| {
                request.role_arn() == Some("arn:aws:iam::444444444444:role/model-promotion-deploy")
                    && request.role_session_name() == Some("op-alice@example.com")
                    && request.source_identity() == Some("alice@example.com")
            })
            .then_output(|| {
                let expiry = DateTime::from_secs(4_102_444_800);
                let credentials = StsCredentials::builder().access_key_id("ASIA1").secret_access_key("s").session_token("t").expiration(expiry).build();
                AssumeRoleOutput::builder().credentials(credentials.expect("complete")).build()
            });
        let sts = mock_client!(aws_sdk_sts, RuleMode::Sequential, [&rule]);
        let role = OperatorRole::with_client(sts, "arn:aws:iam::444444444444:role/model-promotion-deploy".into(), &operator);

        let credentials = role.provide_credentials().await.expect("the request had the operator's shape");

        assert_eq!(rule.num_calls(), 1);
        assert_eq!((credentials.access_key_id(), credentials.session_token()), ("ASIA1", Some("t")));
        assert_eq!(credentials.expiry(), Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(4_102_444_800)));
    }
}
