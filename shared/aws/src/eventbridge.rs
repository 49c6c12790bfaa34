//! EventBridge: events the service publishes on the central bus.

use async_trait::async_trait;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;
use serde_json::Value;

use promotion_core::ports::{EventPublisher, FailureKind, PortError, PortResult};

use crate::errors::classify;

pub const EVENT_SOURCE: &str = "model-promotion";

pub struct EventBus {
    client: Client,
    bus: String,
}

impl EventBus {
    pub fn new(client: Client, bus: &str) -> Self {
        Self { client, bus: bus.to_owned() }
    }
}

#[async_trait]
impl EventPublisher for EventBus {
    async fn publish(&self, detail_type: &str, detail: &Value) -> PortResult<()> {
        let entry = PutEventsRequestEntry::builder().event_bus_name(&self.bus).source(EVENT_SOURCE).detail_type(detail_type).detail(detail.to_string()).build();
        let out = self.client.put_events().entries(entry).send().await.map_err(|e| classify("PutEvents", &e))?;
        // PutEvents answers 200 even when an entry failed; the entry says why.
        match out.entries().iter().find(|e| e.error_code().is_some()) {
            None => Ok(()),
            Some(failed) => {
                let code = failed.error_code().unwrap_or_default();
                let kind = if code.contains("Throttl") || code.contains("Internal") { FailureKind::Retryable } else { FailureKind::Terminal };
                Err(PortError::new("PutEvents", kind, format!("{code}: {}", failed.error_message().unwrap_or_default())))
            }
        }
    }
}
