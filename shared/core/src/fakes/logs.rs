//! Log capture, for tests that assert what never reaches a log line.

use std::sync::{Arc, Mutex};

use serde_json::Value;

/// What the tracing macros write while a capture is installed: for tests that assert what never
/// reaches a log line, such as a CodePipeline job's artifactCredentials.
#[derive(Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// Captures every event at every level, as JSON lines, on this thread until the guard drops.
    pub fn everything() -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Self::default();
        let subscriber = tracing_subscriber::fmt().json().with_max_level(tracing::Level::TRACE).with_writer(logs.clone()).finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Panics when a line holds any value of the job event's artifactCredentials, or names them.
    pub fn assert_free_of_credentials(&self, job: &Value) {
        let credentials = job["CodePipeline.job"]["data"]["artifactCredentials"].as_object().expect("the job carries artifactCredentials");
        assert!(!credentials.is_empty(), "the job's artifactCredentials are empty");
        for line in self.text().lines() {
            for (name, value) in credentials {
                let value = value.as_str().expect("credentials are strings");
                assert!(!line.contains(value), "{name} leaked into a log line");
            }
            assert!(!line.contains("artifactCredentials"), "a log line names the artifactCredentials");
        }
    }
}

impl std::io::Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLogs {
    type Writer = Self;

    fn make_writer(&'a self) -> Self {
        self.clone()
    }
}
