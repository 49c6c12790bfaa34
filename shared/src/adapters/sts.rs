//! STS: sessions in other accounts through an assumed role.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_config::sts::AssumeRoleProvider;
use aws_config::SdkConfig;
use aws_credential_types::provider::SharedCredentialsProvider;

use crate::domain::ids::AccountId;
use crate::ports::{AccountSessions, ModelRegistry, PortResult};

use super::sagemaker::SageMakerRegistry;

const SESSION_NAME: &str = "model-promotion";

/// Assumes `arn:aws:iam::{account}:role/{role}`; credentials refresh themselves, and a warm
/// Lambda keeps one client per account.
pub struct RoleSessions {
    base: SdkConfig,
    role_name: String,
    registries: Mutex<HashMap<AccountId, Arc<dyn ModelRegistry>>>,
}

impl RoleSessions {
    pub fn new(base: SdkConfig, role_name: &str) -> Self {
        Self { base, role_name: role_name.to_owned(), registries: Mutex::new(HashMap::new()) }
    }

    async fn config_for(&self, account: &AccountId) -> SdkConfig {
        let role_arn = format!("arn:aws:iam::{account}:role/{}", self.role_name);
        let provider = AssumeRoleProvider::builder(role_arn).session_name(SESSION_NAME).configure(&self.base).build().await;
        self.base.to_builder().credentials_provider(SharedCredentialsProvider::new(provider)).build()
    }
}

#[async_trait]
impl AccountSessions for RoleSessions {
    async fn registry(&self, account: &AccountId) -> PortResult<Arc<dyn ModelRegistry>> {
        if let Some(registry) = self.registries.lock().expect("registry cache").get(account) {
            return Ok(registry.clone());
        }
        let config = self.config_for(account).await;
        let registry: Arc<dyn ModelRegistry> = Arc::new(SageMakerRegistry::new(aws_sdk_sagemaker::Client::new(&config)));
        self.registries.lock().expect("registry cache").insert(account.clone(), registry.clone());
        Ok(registry)
    }
}
