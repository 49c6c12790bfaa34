//! Structured logs: JSON lines in Lambda, readable lines on a terminal.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls (tests, the CLI) are no-ops.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let in_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = if in_lambda {
        builder.json().with_current_span(false).without_time().try_init()
    } else {
        builder.compact().try_init()
    };
    drop(result);
}
