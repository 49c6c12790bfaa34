//! Structured logs: JSON lines in Lambda, readable lines on a terminal.

use tracing::level_filters::LevelFilter;
use tracing::Subscriber;
use tracing_subscriber::filter::{FilterExt, Targets};
use tracing_subscriber::layer::{Filter, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

/// The Lambda runtime's crates (`lambda_runtime`, `lambda_runtime_api_client`). At TRACE the
/// runtime logs every raw invocation event, and a CodePipeline job's event carries its
/// `artifactCredentials`.
const LAMBDA_RUNTIME: &str = "lambda_runtime";

/// What gets logged: `rust_log` (the RUST_LOG syntax; `info` when unset or invalid), except that
/// the Lambda runtime's own targets stay at INFO or above whatever `rust_log` asks of them.
pub fn filter<S>(rust_log: Option<&str>) -> impl Filter<S> + Send + Sync + 'static
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let wanted = rust_log.filter(|raw| !raw.trim().is_empty()).and_then(|raw| EnvFilter::try_new(raw).ok()).unwrap_or_else(|| EnvFilter::new("info"));
    let runtime_capped = Targets::new().with_default(LevelFilter::TRACE).with_target(LAMBDA_RUNTIME, LevelFilter::INFO);
    wanted.and(runtime_capped)
}

/// Installs the global subscriber once; later calls (tests, the CLI) are no-ops.
pub fn init() {
    let rust_log = std::env::var("RUST_LOG").ok();
    let in_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    let format = fmt::layer().with_writer(std::io::stderr);
    let layer = if in_lambda { format.json().with_current_span(false).without_time().boxed() } else { format.compact().boxed() };
    drop(tracing_subscriber::registry().with(layer.with_filter(filter(rust_log.as_deref()))).try_init());
}

#[cfg(test)]
mod tests {
    use super::*;
    use promotion_core::fakes::CapturedLogs;

    #[test]
    fn the_lambda_runtime_logs_no_raw_event_whatever_rust_log_says() {
        for rust_log in ["trace", "trace,lambda_runtime=trace", "lambda_runtime=trace,promotion_core=trace", "trace,lambda_runtime::layers::api_response=trace"]
        {
            let logs = CapturedLogs::default();
            let subscriber = tracing_subscriber::registry().with(fmt::layer().json().with_writer(logs.clone()).with_filter(filter(Some(rust_log))));
            tracing::subscriber::with_default(subscriber, || {
                tracing::trace!(
                    target: "lambda_runtime::layers::api_response",
                    body = r#"{"CodePipeline.job":{"data":{"artifactCredentials":{"secretAccessKey":"FAKE-SECRET-7c1e"}}}}"#,
                    "raw JSON event received from Lambda"
                );
                tracing::info!(target: "lambda_runtime::runtime", "an info line of the runtime");
                tracing::trace!(target: "promotion_core::deployment::test", "a trace line of the service");
            });
            let text = logs.text();
            assert!(!text.contains("FAKE-SECRET-7c1e"), "RUST_LOG={rust_log} let the raw event through: {text}");
            assert!(text.contains("a trace line of the service"), "RUST_LOG={rust_log} should log the service at TRACE: {text}");
            assert!(text.contains("an info line of the runtime"), "RUST_LOG={rust_log} should keep the runtime's INFO: {text}");
        }
    }

    #[test]
    fn without_rust_log_the_service_logs_at_info() {
        for rust_log in [None, Some(""), Some("not a=valid=filter")] {
            let logs = CapturedLogs::default();
            let subscriber = tracing_subscriber::registry().with(fmt::layer().with_writer(logs.clone()).with_filter(filter(rust_log)));
            tracing::subscriber::with_default(subscriber, || {
                tracing::debug!(target: "promotion_core::deployment::test", "a debug line");
                tracing::info!(target: "promotion_core::deployment::test", "a decision");
            });
            let text = logs.text();
            assert!(text.contains("a decision") && !text.contains("a debug line"), "{rust_log:?}: {text}");
        }
    }
}
