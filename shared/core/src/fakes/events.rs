//! The event bus.

use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::Value;

use crate::ports::{EventPublisher, PortResult};

#[derive(Default)]
pub struct FakePublisher {
    pub events: Mutex<Vec<(String, Value)>>,
}

#[async_trait]
impl EventPublisher for FakePublisher {
    async fn publish(&self, detail_type: &str, detail: &Value) -> PortResult<()> {
        self.events.lock().unwrap().push((detail_type.to_owned(), detail.clone()));
        Ok(())
    }
}
