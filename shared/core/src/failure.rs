//! What every operation's error tells the edge: whether a redelivery can succeed, and its name.

/// An operation's error. The Lambda glue reports `error_type()` as the runtime's `errorType`:
/// `Retryable.*` is worth a redelivery, `Rejected.*` goes to the dead-letter queue.
pub trait Failure: std::error::Error {
    /// The error's name, without its class.
    fn name(&self) -> &'static str;

    /// Whether a later delivery of the same event can succeed.
    fn is_retryable(&self) -> bool;

    fn error_type(&self) -> String {
        format!("{}.{}", if self.is_retryable() { "Retryable" } else { "Rejected" }, self.name())
    }
}

/// An AWS call that failed, on its own: named after the call, worth a redelivery when transient.
impl Failure for crate::ports::PortError {
    fn name(&self) -> &'static str {
        self.operation
    }

    fn is_retryable(&self) -> bool {
        crate::ports::PortError::is_retryable(self)
    }
}
