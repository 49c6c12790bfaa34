//! test-model's tokens and evidence against the fakes.

use async_trait::async_trait;

use super::*;
use crate::deployment::testing::{deploy, job_event};
use crate::fakes::DeployWorld;
use crate::ports::{FailureKind, Notifier, PortError, PortResult};

/// An approval topic that refuses its first message as throttled, then takes them.
#[derive(Default)]
struct ThrottledOnce {
    sent: std::sync::Mutex<Vec<String>>,
    refused: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl Notifier for ThrottledOnce {
    async fn notify(&self, _subject: &str, message: &str) -> PortResult<()> {
        if !self.refused.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Err(PortError::new("Publish", FailureKind::Retryable, "Throttling: Rate exceeded"));
        }
        self.sent.lock().unwrap().push(message.to_owned());
        Ok(())
    }
}

#[tokio::test]
async fn a_transient_failure_after_a_pass_finishes_recording_it_without_testing_again_nor_repeating_a_step() {
    let world = DeployWorld::new(0);
    assert!(matches!(deploy(&world, &world.package, Stage::Test).await, JobOutcome::Succeeded { .. }));
    let topic = Arc::new(ThrottledOnce::default());
    let ports = DeployPorts { approvers: topic.clone(), ..world.ports.clone() };
    let deadline = || Utc::now() + chrono::Duration::minutes(5);
    let cards = || world.cards.cards.lock().unwrap()["churn-prediction-111111111111-v1"].len();

    let first = handle_test_job(&ports, &world.config, &job_event("tests-1", Stage::Test, &world.package, None), deadline()).await.unwrap();

    let JobOutcome::Continuing { continuation, summary } = first else { panic!("{first:?}") };
    assert!(summary.contains("the tests passed; will finish recording it") && summary.contains("Throttling"), "{summary}");
    assert_eq!((cards(), topic.sent.lock().unwrap().len()), (2, 0));
    // The next job must not test again: the endpoint now refuses every invocation.
    world.test.fault("InvokeEndpoint", crate::fakes::Fault::Fail(PortError::new("InvokeEndpoint", FailureKind::Terminal, "AccessDeniedException")));
    let second = handle_test_job(&ports, &world.config, &job_event("tests-2", Stage::Test, &world.package, Some(&continuation)), deadline()).await.unwrap();

    let JobOutcome::Succeeded { variables, .. } = second else { panic!("{second:?}") };
    assert_eq!(variables["ReportKey"], "reports/churn-prediction-111111111111/1/test-tests-1.json", "the report of the run that passed");
    assert_eq!(cards(), 2, "the card took the report once");
    let sent = topic.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "the approvers are told once");
    assert!(sent[0].contains("test-tests-1.json"), "{}", sent[0]);
    assert_eq!(world.audit_actions().iter().filter(|a| *a == "tests-passed").count(), 1);
    assert_eq!(world.test.faults.lock().unwrap().len(), 1, "the endpoint was not invoked again");
}

#[tokio::test]
async fn a_token_naming_another_versions_report_is_refused() {
    let world = DeployWorld::new(0);
    let report = "s3://model-promotion-artifacts-222222222222/reports/churn-prediction-111111111111/2/test-x.json".parse().unwrap();
    let pass = Pass { report, tested_by: "x".into(), passed: 2, total: 2, slowest_ms: 5 };
    let token = Progress { phase: Phase::Passed(pass), out_of_time: 1 }.token();

    let outcome = handle_test_job(
        &world.ports,
        &world.config,
        &job_event("tests-1", Stage::Test, &world.package, Some(&token)),
        Utc::now() + chrono::Duration::minutes(5),
    )
    .await
    .unwrap();

    assert!(matches!(outcome, JobOutcome::Failed { ref error_type, .. } if error_type == "Rejected.BadContinuation"), "{outcome:?}");
    assert!(world.approvers.sent.lock().unwrap().is_empty() && world.audit_actions().is_empty());
}

#[test]
fn a_token_of_the_earlier_format_still_means_testing_again_and_a_pass_fits_a_token() {
    let progress: Progress = serde_json::from_str(r#"{"phase":"retest"}"#).unwrap();
    assert_eq!(progress, Progress { phase: Phase::Retest, out_of_time: 0 });

    let group: crate::domain::ids::GroupName = "g".repeat(63).parse().unwrap();
    let package = ModelPackageArn::new("ap-southeast-5", &"222222222222".parse().unwrap(), &group, u32::MAX);
    let report = report_uri(&"b".repeat(63), &package, "f41c2a9d-83b7-4e65-a0d2-5b6c7e8f9a10").unwrap();
    let pass = Pass { report, tested_by: "f41c2a9d-83b7-4e65-a0d2-5b6c7e8f9a10".into(), passed: usize::MAX, total: usize::MAX, slowest_ms: u64::MAX };
    let longest = Progress { phase: Phase::Passed(pass), out_of_time: u32::MAX };
    let token = longest.token();
    assert!(token.len() <= 2048, "CodePipeline takes continuation tokens of at most 2048 characters: {}", token.len());
    assert_eq!(serde_json::from_str::<Progress>(&token).unwrap(), longest);
}

#[test]
fn the_evidence_is_what_the_pipeline_definition_publishes_and_fits_its_longest_values() {
    let group: crate::domain::ids::GroupName = "g".repeat(63).parse().unwrap();
    let package = ModelPackageArn::new("ap-southeast-5", &"222222222222".parse().unwrap(), &group, u32::MAX);
    let job_id = "f41c2a9d-83b7-4e65-a0d2-5b6c7e8f9a10";
    let uri = report_uri(&"b".repeat(63), &package, job_id).unwrap();
    let case = CaseResult { name: "c".into(), passed: true, status: Some(200), latency_ms: u64::MAX, failure: None };
    let report = TestReport {
        model_package_arn: package.to_string(),
        stage: "test".into(),
        endpoint: "e".into(),
        job_id: job_id.into(),
        tested_at: "2024-01-01T00:00:00Z".into(),
        passed: 10_000,
        failed: 0,
        cases: vec![case; 10_000],
    };

    let variables = evidence(&package, &Pass::of(&report, &uri));

    let limits = published_variables();
    assert_eq!(variables.keys().collect::<Vec<_>>(), limits.keys().collect::<Vec<_>>());
    for (name, value) in &variables {
        assert!(value.len() <= limits[name], "{name} is {} characters, more than {}: {value}", value.len(), limits[name]);
    }
    assert_eq!(variables["ReportKey"], format!("reports/{group}/{}/test-{job_id}.json", u32::MAX));
    assert!(variables["ModelCardUrl"].ends_with(&format!("#/model-cards/{}", crate::domain::card::card_name(&package))), "{}", variables["ModelCardUrl"]);
    assert_eq!(variables["TestSummary"], format!("10000/10000 test cases passed, slowest {} ms", u64::MAX));
}
