//! AWS calls counted by an SDK interceptor registered on every client the measured ports use:
//! each operation's service and name (from the `Metadata` the operation's runtime plugin stores
//! in the config bag), its attempts (HTTP requests sent, retries included), and when it started
//! and ended.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

/// One operation as the SDK executed it.
#[derive(Debug, Clone)]
pub struct Call {
    /// `SageMaker.DescribeModelPackage`, `S3.UploadPartCopy`, …
    pub operation: String,
    /// HTTP requests sent for it (0 when it failed before sending one).
    pub attempts: usize,
    pub started: Instant,
    /// `None` while it runs.
    pub ended: Option<Instant>,
}

/// The interceptor and its record. Clones share the record.
#[derive(Debug, Clone, Default)]
pub struct CallLog(Arc<Mutex<Record>>);

#[derive(Debug, Default)]
struct Record {
    calls: Vec<Call>,
    /// Calls before this index were already taken.
    taken: usize,
}

/// The index of the running operation's `Call`, kept in its config bag between hooks.
#[derive(Debug, Clone, Copy)]
struct CallIndex(usize);

impl Storable for CallIndex {
    type Storer = StoreReplace<Self>;
}

impl CallLog {
    /// The calls begun since the last `take`.
    pub fn take(&self) -> Vec<Call> {
        let mut record = self.0.lock().expect("call log");
        let end = record.calls.len();
        let from = std::mem::replace(&mut record.taken, end);
        record.calls[from..].to_vec()
    }

    /// Changes the running operation's `Call`, naming it first if it is not yet named.
    fn update(&self, cfg: &ConfigBag, change: impl FnOnce(&mut Call)) {
        let Some(CallIndex(index)) = cfg.load::<CallIndex>() else { return };
        if let Some(call) = self.0.lock().expect("call log").calls.get_mut(*index) {
            if call.operation.is_empty() {
                call.operation = cfg.load::<Metadata>().map_or_else(|| "?".to_owned(), |m| format!("{}.{}", m.service(), m.name()));
            }
            change(call);
        }
    }
}

impl Intercept for CallLog {
    fn name(&self) -> &'static str {
        "CallLog"
    }

    /// A client's interceptor runs this hook before the operation's configuration is applied:
    /// the call is named by the later hooks, once `Metadata` is in the bag.
    fn read_before_execution(&self, _: &BeforeSerializationInterceptorContextRef<'_>, cfg: &mut ConfigBag) -> Result<(), BoxError> {
        let index = {
            let mut record = self.0.lock().expect("call log");
            record.calls.push(Call { operation: String::new(), attempts: 0, started: Instant::now(), ended: None });
            record.calls.len() - 1
        };
        cfg.interceptor_state().store_put(CallIndex(index));
        Ok(())
    }

    fn read_before_transmit(&self, _: &BeforeTransmitInterceptorContextRef<'_>, _: &RuntimeComponents, cfg: &mut ConfigBag) -> Result<(), BoxError> {
        self.update(cfg, |call| call.attempts += 1);
        Ok(())
    }

    fn read_after_execution(&self, _: &FinalizerInterceptorContextRef<'_>, _: &RuntimeComponents, cfg: &mut ConfigBag) -> Result<(), BoxError> {
        let now = Instant::now();
        self.update(cfg, |call| call.ended = Some(now));
        Ok(())
    }
}

/// HTTP requests sent, retries included.
pub fn requests(calls: &[Call]) -> usize {
    calls.iter().map(|c| c.attempts).sum()
}

/// HTTP requests by operation.
pub fn by_operation(calls: &[Call]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for call in calls {
        *counts.entry(call.operation.clone()).or_insert(0) += call.attempts;
    }
    counts
}

/// The critical path's depth: the longest chain of calls each begun after the previous one
/// ended (the number of sequential waves; calls that overlap are in the same wave).
pub fn waves(calls: &[Call]) -> usize {
    let mut spans: Vec<(Instant, Instant)> = calls.iter().map(|c| (c.started, c.ended.unwrap_or(c.started))).collect();
    spans.sort();
    // Calls by end, with their depth; those ended before the current start feed `deepest`.
    let mut running: BinaryHeap<Reverse<(Instant, usize)>> = BinaryHeap::new();
    let (mut deepest_before, mut deepest) = (0, 0);
    for (started, ended) in spans {
        while running.peek().is_some_and(|Reverse((end, _))| *end <= started) {
            let Reverse((_, depth)) = running.pop().expect("peeked");
            deepest_before = deepest_before.max(depth);
        }
        let depth = deepest_before + 1;
        deepest = deepest.max(depth);
        running.push(Reverse((ended, depth)));
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn call(zero: Instant, start_ms: u64, end_ms: u64) -> Call {
        Call {
            operation: "S3.HeadObject".into(),
            attempts: 1,
            started: zero + Duration::from_millis(start_ms),
            ended: Some(zero + Duration::from_millis(end_ms)),
        }
    }

    #[test]
    fn waves_count_the_longest_chain_of_calls_that_do_not_overlap() {
        let zero = Instant::now();
        let call = |start, end| call(zero, start, end);
        assert_eq!(waves(&[]), 0);
        assert_eq!(waves(&[call(0, 10), call(10, 20), call(25, 30)]), 3);
        // Three parallel calls, then one after all of them: two waves.
        assert_eq!(waves(&[call(0, 10), call(1, 12), call(2, 9), call(12, 20)]), 2);
        // A long call beside a chain of two: the chain decides.
        assert_eq!(waves(&[call(0, 100), call(0, 10), call(20, 30), call(101, 110)]), 3);
    }
}
