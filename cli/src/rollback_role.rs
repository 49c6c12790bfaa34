//! `promote rollback` reaches a stage account through the operators' rollback role, never the
//! service's deploy role: that role may only point `promoted-*` endpoints at existing
//! `promoted-*` endpoint configs (no model or config created, nothing deleted), so a rollback
//! that would have to recreate a failed or missing endpoint is refused by IAM.

use std::sync::Arc;

use async_trait::async_trait;
use aws_config::SdkConfig;
use promotion_aws::endpoints::SageMakerEndpoints;
use promotion_aws::sts::RoleSessions;
use promotion_core::config::DEFAULT_OPERATOR_ROLLBACK_ROLE;
use promotion_core::domain::deploy::StageSettings;
use promotion_core::domain::operator::Operator;
use promotion_core::ports::{Endpoints, PortResult, StageSessions};

/// The rollback role's name: `OPERATOR_ROLLBACK_ROLE_NAME`, else the target stacks' default.
pub fn rollback_role(lookup: impl Fn(&str) -> Option<String>) -> String {
    lookup("OPERATOR_ROLLBACK_ROLE_NAME").filter(|name| !name.is_empty()).unwrap_or_else(|| DEFAULT_OPERATOR_ROLLBACK_ROLE.to_owned())
}

/// Stage sessions through `role` in each stage account, whatever role the stage settings name.
pub struct RollbackSessions {
    sessions: RoleSessions,
    role: String,
}

impl RollbackSessions {
    /// The sessions carry `operator` (session name and SourceIdentity), for CloudTrail in the stage accounts.
    pub fn new(base: SdkConfig, role: String, operator: Operator) -> Self {
        Self { sessions: RoleSessions::for_operator(base, operator), role }
    }
}

#[async_trait]
impl StageSessions for RollbackSessions {
    async fn endpoints(&self, stage: &StageSettings) -> PortResult<Arc<dyn Endpoints>> {
        let config = self.sessions.config_for(&stage.account, &self.role).await;
        Ok(Arc::new(SageMakerEndpoints::new(&config)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rollback_role_is_the_target_stacks_default_unless_named() {
        assert_eq!(rollback_role(|_| None), "model-promotion-operator-rollback");
        assert_eq!(rollback_role(|_| Some(String::new())), "model-promotion-operator-rollback");
        assert_eq!(rollback_role(|name| (name == "OPERATOR_ROLLBACK_ROLE_NAME").then(|| "ops-rollback".to_owned())), "ops-rollback");
    }
}
