//! The approval topic.

use std::sync::Mutex;

use async_trait::async_trait;

use crate::ports::{Notifier, PortResult};

#[derive(Default)]
pub struct FakeNotifier {
    pub sent: Mutex<Vec<(String, String)>>,
}

#[async_trait]
impl Notifier for FakeNotifier {
    async fn notify(&self, subject: &str, message: &str) -> PortResult<()> {
        self.sent.lock().unwrap().push((subject.to_owned(), message.to_owned()));
        Ok(())
    }
}
