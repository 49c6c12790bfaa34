//! Model cards, one list of versions per card.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::Value;

use crate::ports::{CardSnapshot, CardStatus, FailureKind, ModelCards, PortError, PortResult};

#[derive(Default)]
pub struct FakeCards {
    pub cards: Mutex<HashMap<String, Vec<Value>>>,
    pub statuses: Mutex<HashMap<String, CardStatus>>,
}

#[async_trait]
impl ModelCards for FakeCards {
    async fn describe(&self, name: &str) -> PortResult<Option<CardSnapshot>> {
        let cards = self.cards.lock().unwrap();
        Ok(cards.get(name).map(|versions| CardSnapshot {
            version: u32::try_from(versions.len()).expect("few versions"),
            content: versions.last().cloned().unwrap_or_default(),
        }))
    }

    async fn create(&self, name: &str, content: &Value) -> PortResult<u32> {
        let mut cards = self.cards.lock().unwrap();
        if cards.contains_key(name) {
            return Err(PortError::new("CreateModelCard", FailureKind::Conflict, "card already exists"));
        }
        cards.insert(name.to_owned(), vec![content.clone()]);
        Ok(1)
    }

    async fn update(&self, name: &str, content: &Value, status: Option<CardStatus>) -> PortResult<u32> {
        if let Some(status) = status {
            self.statuses.lock().unwrap().insert(name.to_owned(), status);
        }
        let mut cards = self.cards.lock().unwrap();
        let versions = cards.get_mut(name).ok_or_else(|| PortError::new("UpdateModelCard", FailureKind::NotFound, "no card"))?;
        versions.push(content.clone());
        Ok(u32::try_from(versions.len()).expect("few versions"))
    }
}
