//! Property tests of the two event parsers at the edge of the service: random mutations of the
//! reference events (values replaced by random JSON at random JSON pointers, keys dropped or
//! added, strings duplicated, cut, altered or blown up) never panic them, and what they accept
//! keeps the invariants the rest of the code relies on.

mod mutations;

use mutations::{arb_json, arb_mutated_event, arb_string};
use promotion_core::domain::deploy::PipelineJob;
use promotion_core::domain::event::StateChange;
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::Value;

/// What the code after the parser takes for granted of a parsed state change.
fn check_state_change(event: &Value) {
    let Ok(change) = StateChange::parse(event) else {
        return;
    };
    assert_eq!(change.package.account(), &change.account, "an accepted event's ARN belongs to its account");
    assert!(!change.event_id.is_empty() && change.event_id.len() <= 128);
    assert!(change.package.version() >= 1);
    assert!(promotion_core::domain::ids::is_sagemaker_name(change.package.group().as_str()));
    assert_eq!(change.package.to_string().parse::<promotion_core::domain::ids::ModelPackageArn>().as_ref(), Ok(&change.package));
    // Parsing is a function of the value: the same event parses the same way again.
    assert_eq!(StateChange::parse(event), Ok(change));
}

fn check_job(event: &Value) {
    let parsed = PipelineJob::parse(event);
    if let Ok(job) = &parsed {
        assert!(!job.id.is_empty());
        assert!(!format!("{job:?}").contains("wJalrXUtnFEMI"), "a parsed job never carries the artifact credentials");
    }
    let _ = PipelineJob::id_of(event);
}

proptest! {
    #![proptest_config(Config { cases: 1000, max_shrink_iters: 2000, ..Config::default() })]

    #[test]
    fn mutated_events_never_panic_the_parsers((_name, event) in arb_mutated_event()) {
        check_state_change(&event);
        check_job(&event);
        // What the runtime hands over after a round trip through the wire parses the same.
        let wire = serde_json::to_vec(&event).unwrap();
        let back: Value = serde_json::from_slice(&wire).unwrap();
        prop_assert_eq!(StateChange::parse(&back).is_ok(), StateChange::parse(&event).is_ok());
    }

    #[test]
    fn random_json_never_panics_the_parsers(event in arb_json()) {
        check_state_change(&event);
        check_job(&event);
    }

    #[test]
    fn random_user_parameters_never_panic_the_job_parser(parameters in prop_oneof![arb_string(), arb_json().prop_map(|v| v.to_string())], continuation in proptest::option::of(arb_string())) {
        let mut event: Value = serde_json::from_str(include_str!("../../../events/codepipeline-job-deploy-test.json")).unwrap();
        event["CodePipeline.job"]["data"]["actionConfiguration"]["configuration"]["UserParameters"] = Value::String(parameters);
        if let Some(token) = continuation {
            event["CodePipeline.job"]["data"]["continuationToken"] = Value::String(token);
        }
        check_job(&event);
    }

    #[test]
    fn random_bytes_that_happen_to_be_json_never_panic_the_parsers(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(event) = serde_json::from_slice::<Value>(&bytes) {
            check_state_change(&event);
            check_job(&event);
        }
    }
}

/// The mutations do reach both sides: some mutated events still parse, most do not.
#[test]
fn the_mutations_reach_both_valid_and_invalid_events() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = arb_mutated_event();
    let (mut valid, mut invalid) = (0, 0);
    for _ in 0..2000 {
        let (name, event) = strategy.new_tree(&mut runner).unwrap().current();
        if !name.starts_with("model-package") {
            continue;
        }
        match StateChange::parse(&event) {
            Ok(_) => valid += 1,
            Err(_) => invalid += 1,
        }
    }
    assert!(valid > 20 && invalid > 100, "valid {valid}, invalid {invalid}");
}
