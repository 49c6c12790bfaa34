//! A model registry (dev or central) and the sessions that reach the dev accounts' registries.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::domain::event::ApprovalStatus;
use crate::domain::ids::{AccountId, GroupName, ModelPackageArn};
use crate::domain::package::{NewPackage, RegisteredPackage};
use crate::ports::{AccountSessions, FailureKind, ImageRegistry, ModelRegistry, PortError, PortResult};

use super::FakeImages;

#[derive(Default)]
pub struct FakeRegistry {
    pub region: String,
    pub account: Option<AccountId>,
    pub packages: Mutex<BTreeMap<String, RegisteredPackage>>,
    pub groups: Mutex<HashSet<GroupName>>,
    pub creates: AtomicUsize,
    /// Approval changes are denied, as to a role that may not UpdateModelPackage.
    pub deny_approvals: std::sync::atomic::AtomicBool,
}

impl FakeRegistry {
    pub fn in_account(account: &str) -> Self {
        Self { region: "us-east-1".into(), account: Some(account.parse().expect("account")), ..Self::default() }
    }

    pub fn add(&self, package: RegisteredPackage) {
        self.packages.lock().unwrap().insert(package.arn.to_string(), package);
    }

    pub fn versions(&self, group: &GroupName) -> Vec<RegisteredPackage> {
        self.packages.lock().unwrap().values().filter(|p| p.arn.group() == group).cloned().collect()
    }
}

#[async_trait]
impl ModelRegistry for FakeRegistry {
    async fn describe_package(&self, arn: &ModelPackageArn) -> PortResult<RegisteredPackage> {
        let found = self.packages.lock().unwrap().get(arn.as_str()).cloned();
        found.ok_or_else(|| PortError::new("DescribeModelPackage", FailureKind::Terminal, format!("{arn} does not exist")))
    }

    async fn ensure_group(&self, group: &GroupName, _description: &str) -> PortResult<()> {
        self.groups.lock().unwrap().insert(group.clone());
        Ok(())
    }

    async fn create_package(&self, package: &NewPackage) -> PortResult<ModelPackageArn> {
        if !self.groups.lock().unwrap().contains(&package.group) {
            // As SageMaker answers: a ValidationException saying the group does not exist.
            return Err(PortError::new("CreateModelPackage", FailureKind::NotFound, "ValidationException: Model Package Group does not exist."));
        }
        self.creates.fetch_add(1, Ordering::SeqCst);
        let version = u32::try_from(self.versions(&package.group).len() + 1).expect("few versions");
        let account = self.account.clone().expect("registry account");
        let arn = ModelPackageArn::new(&self.region, &account, &package.group, version);
        self.add(RegisteredPackage {
            arn: arn.clone(),
            description: Some(package.description.clone()),
            status: Some(ApprovalStatus::PendingManualApproval),
            inference: package.inference.clone(),
            artifacts: package.artifacts.clone(),
            customer_metadata: package.customer_metadata.clone(),
        });
        Ok(arn)
    }

    async fn find_recent_by_description(&self, group: &GroupName, description: &str) -> PortResult<Option<ModelPackageArn>> {
        Ok(self.versions(group).into_iter().rev().find(|p| p.description.as_deref() == Some(description)).map(|p| p.arn))
    }

    async fn set_approval(&self, package: &RegisteredPackage, status: ApprovalStatus, _reason: &str, extra: &[(&str, &str)]) -> PortResult<()> {
        if self.deny_approvals.load(Ordering::SeqCst) {
            return Err(PortError::new("UpdateModelPackage", FailureKind::Terminal, "AccessDeniedException"));
        }
        let mut packages = self.packages.lock().unwrap();
        let stored = packages.get_mut(package.arn.as_str()).expect("package exists");
        stored.status = Some(status);
        stored.customer_metadata.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        Ok(())
    }
}

#[derive(Default)]
pub struct FakeSessions {
    pub registries: HashMap<AccountId, Arc<FakeRegistry>>,
    /// ECR as each account's role sees it.
    pub images: HashMap<AccountId, Arc<FakeImages>>,
}

#[async_trait]
impl AccountSessions for FakeSessions {
    async fn registry(&self, account: &AccountId) -> PortResult<Arc<dyn ModelRegistry>> {
        match self.registries.get(account) {
            Some(registry) => Ok(registry.clone()),
            None => Err(PortError::new("AssumeRole", FailureKind::Terminal, format!("no role in {account}"))),
        }
    }

    async fn images(&self, account: &AccountId) -> PortResult<Arc<dyn ImageRegistry>> {
        match self.images.get(account) {
            Some(images) => Ok(images.clone()),
            None => Err(PortError::new("AssumeRole", FailureKind::Terminal, format!("no role in {account}"))),
        }
    }
}
