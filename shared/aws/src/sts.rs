//! STS: sessions in other accounts through an assumed role.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_config::sts::AssumeRoleProvider;
use aws_config::SdkConfig;
use aws_credential_types::provider::SharedCredentialsProvider;

use promotion_core::domain::deploy::StageSettings;
use promotion_core::domain::ids::AccountId;
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
}

impl RoleSessions {
    pub fn new(base: SdkConfig) -> Self {
        Self { base, configs: Mutex::new(HashMap::new()) }
    }

    pub async fn config_for(&self, account: &AccountId, role: &str) -> SdkConfig {
        let key = (account.clone(), role.to_owned());
        if let Some(config) = self.configs.lock().expect("session cache").get(&key) {
            return config.clone();
        }
        let role_arn = format!("arn:aws:iam::{account}:role/{role}");
        let provider = AssumeRoleProvider::builder(role_arn).session_name(SESSION_NAME).configure(&self.base).build().await;
        let config = self.base.to_builder().credentials_provider(SharedCredentialsProvider::new(provider)).build();
        self.configs.lock().expect("session cache").insert(key, config.clone());
        config
    }
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
