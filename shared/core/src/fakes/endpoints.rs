//! SageMaker hosting in a stage account, and the deploy roles that reach it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::domain::deploy::{BlueGreen, StageSettings};
use crate::domain::ids::AccountId;
use crate::ports::{
    EndpointConfigSpec, EndpointState, EndpointStatus, Endpoints, FailureKind, InvokeResult, ModelSpec, PortError, PortResult, Settled, StageSessions,
};

/// How a fake endpoint's pending create or update ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    Succeed,
    Fail(String),
    /// SageMaker rolled the update back on its own: back in service on the old config.
    SilentRollback,
}

#[derive(Debug, Clone)]
pub struct FakeEndpoint {
    pub status: EndpointStatus,
    pub config: String,
    target: Option<String>,
    polls_left: usize,
}

/// SageMaker hosting in one account: endpoints take `polls` describes to settle.
pub struct FakeEndpoints {
    pub polls: usize,
    /// What DescribeEndpoint reports of the images its instances run: none, as moto.
    pub resolved_images: Mutex<Vec<String>>,
    pub transition: Mutex<Transition>,
    pub models: Mutex<Vec<String>>,
    pub configs: Mutex<Vec<String>>,
    pub endpoints: Mutex<HashMap<String, FakeEndpoint>>,
    pub replies: Mutex<std::collections::VecDeque<InvokeResult>>,
    pub calls: Mutex<Vec<String>>,
    /// What the next calls of an operation (`"InvokeEndpoint"`, `"DescribeEndpoint"`…) do instead
    /// of their work, first come first served.
    pub faults: Mutex<Vec<(&'static str, Fault)>>,
}

/// A call of a fake that goes wrong.
#[derive(Debug, Clone)]
pub enum Fault {
    Fail(PortError),
    /// Never answers, as a hung endpoint or connection.
    Hang,
}

impl FakeEndpoints {
    pub fn settling_after(polls: usize) -> Self {
        Self {
            polls,
            resolved_images: Mutex::default(),
            transition: Mutex::new(Transition::Succeed),
            models: Mutex::default(),
            configs: Mutex::default(),
            endpoints: Mutex::default(),
            replies: Mutex::default(),
            calls: Mutex::default(),
            faults: Mutex::default(),
        }
    }

    /// The next call of `operation` goes wrong as `fault` says.
    pub fn fault(&self, operation: &'static str, fault: Fault) {
        self.faults.lock().unwrap().push((operation, fault));
    }

    async fn faulty(&self, operation: &'static str) -> PortResult<()> {
        let fault = {
            let mut faults = self.faults.lock().unwrap();
            faults.iter().position(|(op, _)| *op == operation).map(|at| faults.remove(at).1)
        };
        match fault {
            None => Ok(()),
            Some(Fault::Fail(error)) => Err(error),
            Some(Fault::Hang) => std::future::pending().await,
        }
    }

    pub fn endpoint(&self, name: &str) -> Option<FakeEndpoint> {
        self.endpoints.lock().unwrap().get(name).cloned()
    }

    fn begin(&self, name: &str, status: EndpointStatus, current: &str, target: &str) {
        let endpoint = FakeEndpoint { status, config: current.to_owned(), target: Some(target.to_owned()), polls_left: self.polls };
        self.endpoints.lock().unwrap().insert(name.to_owned(), endpoint);
    }
}

#[async_trait]
impl Endpoints for FakeEndpoints {
    async fn ensure_model(&self, spec: &ModelSpec<'_>) -> PortResult<()> {
        self.faulty("CreateModel").await?;
        let mut models = self.models.lock().unwrap();
        if !models.iter().any(|m| m == spec.name) {
            models.push(spec.name.to_owned());
        }
        Ok(())
    }

    async fn ensure_endpoint_config(&self, spec: &EndpointConfigSpec<'_>) -> PortResult<()> {
        self.faulty("CreateEndpointConfig").await?;
        let mut configs = self.configs.lock().unwrap();
        if !configs.iter().any(|c| c == spec.name) {
            configs.push(spec.name.to_owned());
        }
        Ok(())
    }

    async fn describe_endpoint(&self, name: &str) -> PortResult<Option<EndpointState>> {
        self.faulty("DescribeEndpoint").await?;
        let transition = self.transition.lock().unwrap().clone();
        let mut endpoints = self.endpoints.lock().unwrap();
        let Some(endpoint) = endpoints.get_mut(name) else {
            return Ok(None);
        };
        if endpoint.target.is_some() {
            if endpoint.polls_left == 0 {
                let target = endpoint.target.take().expect("pending target");
                match transition {
                    Transition::Succeed => (endpoint.status, endpoint.config) = (EndpointStatus::InService, target),
                    Transition::Fail(_) => endpoint.status = EndpointStatus::Failed,
                    Transition::SilentRollback => endpoint.status = EndpointStatus::InService,
                }
            } else {
                endpoint.polls_left -= 1;
            }
        }
        let failure_reason = match (&endpoint.status, transition) {
            (EndpointStatus::Failed, Transition::Fail(reason)) => Some(reason),
            _ => None,
        };
        let resolved_images = self.resolved_images.lock().unwrap().clone();
        Ok(Some(EndpointState { status: endpoint.status.clone(), config_name: endpoint.config.clone(), failure_reason, resolved_images }))
    }

    async fn create_endpoint(&self, name: &str, config: &str) -> PortResult<()> {
        self.faulty("CreateEndpoint").await?;
        self.calls.lock().unwrap().push(format!("CreateEndpoint {name} {config}"));
        self.begin(name, EndpointStatus::Creating, config, config);
        Ok(())
    }

    async fn update_endpoint(&self, name: &str, config: &str, blue_green: Option<&BlueGreen>) -> PortResult<()> {
        self.faulty("UpdateEndpoint").await?;
        let mode = if blue_green.is_some() { "blue-green" } else { "direct" };
        self.calls.lock().unwrap().push(format!("UpdateEndpoint {name} {config} {mode}"));
        let current = self.endpoint(name).map(|e| e.config).unwrap_or_default();
        self.begin(name, EndpointStatus::Updating, &current, config);
        Ok(())
    }

    async fn delete_endpoint(&self, name: &str) -> PortResult<()> {
        self.faulty("DeleteEndpoint").await?;
        self.calls.lock().unwrap().push(format!("DeleteEndpoint {name}"));
        self.endpoints.lock().unwrap().remove(name);
        Ok(())
    }

    /// Describes until the endpoint settles, as the SDK's waiter polls; the fake's endpoints
    /// settle after `polls` describes, so the bound is a number of polls, not a time.
    async fn wait_until_in_service(&self, name: &str, _bound: Duration) -> PortResult<Settled> {
        for _ in 0..=self.polls + 1 {
            match self.describe_endpoint(name).await? {
                None => return Ok(Settled::Absent),
                Some(state) if state.status.is_transitional() || state.status == EndpointStatus::Deleting => {}
                Some(state) => return Ok(Settled::As(state)),
            }
        }
        Ok(Settled::StillChanging)
    }

    /// A deleted endpoint is gone at once.
    async fn wait_until_deleted(&self, name: &str, _bound: Duration) -> PortResult<Settled> {
        Ok(match self.describe_endpoint(name).await? {
            None => Settled::Absent,
            Some(state) if state.status == EndpointStatus::Failed => Settled::As(state),
            Some(_) => Settled::StillChanging,
        })
    }

    async fn invoke(&self, name: &str, _content_type: &str, _payload: &[u8], _inference_id: &str) -> PortResult<InvokeResult> {
        self.faulty("InvokeEndpoint").await?;
        if self.endpoint(name).is_none() {
            return Err(PortError::new("InvokeEndpoint", FailureKind::Terminal, format!("endpoint {name} not found")));
        }
        Ok(self.replies.lock().unwrap().pop_front().unwrap_or(InvokeResult { status: 200, body: b"0.5".to_vec() }))
    }
}

#[derive(Default)]
pub struct FakeStageSessions {
    pub accounts: HashMap<AccountId, Arc<FakeEndpoints>>,
}

#[async_trait]
impl StageSessions for FakeStageSessions {
    async fn endpoints(&self, stage: &StageSettings) -> PortResult<Arc<dyn Endpoints>> {
        match self.accounts.get(&stage.account) {
            Some(endpoints) => Ok(endpoints.clone()),
            None => Err(PortError::new("AssumeRole", FailureKind::Terminal, format!("no deploy role in {}", stage.account))),
        }
    }
}

impl FakeEndpoints {
    /// An endpoint already in service, as an earlier deployment left it.
    pub fn create_endpoint_for_test(&self, name: &str, config: &str) {
        let endpoint = FakeEndpoint { status: EndpointStatus::InService, config: config.to_owned(), target: None, polls_left: 0 };
        self.endpoints.lock().unwrap().insert(name.to_owned(), endpoint);
    }
}
