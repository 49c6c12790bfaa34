//! The Lambda runtime glue: what the runtime tells a handler about its invocation, and the one
//! place an operation's error becomes the `Diagnostic` the runtime reports.

use chrono::{DateTime, Duration, TimeZone, Utc};
use lambda_runtime::{Context, Diagnostic};
use promotion_core::failure::Failure;

/// When this invocation is cut off: no lease it takes outlives it. `unknown` stands in when the
/// runtime reports no deadline (a local run).
pub fn deadline(context: &Context, unknown: Duration) -> DateTime<Utc> {
    i64::try_from(context.deadline).ok().filter(|ms| *ms > 0).and_then(|ms| Utc.timestamp_millis_opt(ms).single()).unwrap_or_else(|| Utc::now() + unknown)
}

/// The runtime's report of a failed invocation: `errorType` is `Retryable.*` or `Rejected.*`.
pub fn diagnostic<E: Failure>(error: E) -> Diagnostic {
    Diagnostic { error_type: error.error_type(), error_message: error.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_deadline_is_used_and_a_missing_one_is_replaced() {
        let mut context = Context::default();
        context.deadline = 1_800_000_000_000;
        assert_eq!(deadline(&context, Duration::minutes(1)).timestamp_millis(), 1_800_000_000_000);
        context.deadline = 0;
        let fallback = deadline(&context, Duration::minutes(15)) - Utc::now();
        assert!(fallback > Duration::minutes(14) && fallback <= Duration::minutes(15), "{fallback}");
    }
}
