//! `promote approve|reject MODEL --stage prod`: the governance officer's answer to the prod
//! approval, given after the version's test results are shown.

use std::io::Write;

use anyhow::Result;
use promotion_core::deployment::approval::{answer_prod_approval, four_eyes, waiting_prod_approval, WaitingApproval};
use promotion_core::deployment::{DeployConfig, DeployPorts};
use promotion_core::domain::ids::GroupName;

/// Finds the approval that waits for `model`, writes its test results to `out`, then answers it;
/// names the version in full (the `-o wide` form).
pub async fn decide_prod(
    ports: &DeployPorts,
    config: &DeployConfig,
    model: &GroupName,
    approve: bool,
    comment: &str,
    out: &mut dyn Write,
) -> Result<WaitingApproval> {
    decide_prod_shown(ports, config, (model, approve, comment), out, true).await
}

/// As [`decide_prod_shown`], answered by `by` (the operator's ARN, as STS names it): an approval is refused,
/// and nothing sent, when `by` approved the version in dev or centrally (four eyes).
pub async fn decide_prod_as(
    ports: &DeployPorts,
    config: &DeployConfig,
    (model, approve, comment): (&GroupName, bool, &str),
    by: &str,
    out: &mut dyn Write,
    full: bool,
) -> Result<WaitingApproval> {
    if approve && config.separation_of_duties {
        let waiting = waiting_prod_approval(ports, config, model).await.map_err(crate::exit::failure)?;
        four_eyes(ports, &waiting, by).await.map_err(crate::exit::failure)?;
    }
    decide_prod_shown(ports, config, (model, approve, comment), out, full).await
}

/// As [`decide_prod`]; `full` names the version by its ARN and shows the recorded results as
/// they are, otherwise by its short name with the results in words.
pub async fn decide_prod_shown(
    ports: &DeployPorts,
    config: &DeployConfig,
    (model, approve, comment): (&GroupName, bool, &str),
    out: &mut dyn Write,
    full: bool,
) -> Result<WaitingApproval> {
    let waiting = waiting_prod_approval(ports, config, model).await.map_err(crate::exit::failure)?;
    writeln!(out, "{}", tests_line(&waiting, full))?;
    out.flush()?;
    answer_prod_approval(ports, config, &waiting, approve, comment).await.map_err(crate::exit::failure)?;
    let version = if full { waiting.package.to_string() } else { crate::ui::short(&waiting.package) };
    writeln!(out, "{} {version} for prod", if approve { "approved" } else { "rejected" })?;
    Ok(waiting)
}

/// What the officer reads before the answer goes out: the version's latest test run.
fn tests_line(waiting: &WaitingApproval, full: bool) -> String {
    let Some(tests) = &waiting.tests else {
        let version = if full { waiting.package.to_string() } else { crate::ui::short(&waiting.package) };
        return format!("tests of {version} (execution {}): none recorded", waiting.execution_id);
    };
    let result = tests["result"].as_str().unwrap_or("?");
    if full {
        return format!("tests of {} (execution {}): {result} {}", waiting.package, waiting.execution_id, tests["detail"]);
    }
    let entry = promotion_core::domain::audit::AuditEntry::now(&waiting.package, "", result.parse().expect("any action parses"), tests["detail"].clone());
    format!("tests of {}: {result}, {}", crate::ui::short(&waiting.package), crate::history::summary(waiting.package.group(), &entry))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;
    use promotion_core::domain::audit::AuditEntry;
    use promotion_core::domain::fingerprint::ReleaseFingerprint;
    use promotion_core::domain::ids::{ModelPackageArn, S3Uri, Stage};
    use promotion_core::domain::ledger::TestRecord;
    use promotion_core::fakes::{DeployWorld, FakeRuns, DEPLOY_WORLD_EVIDENCE_BUCKET};
    use promotion_core::ports::{ActionRun, ApprovalResult, ArtifactStore, AuditTrail, ExecutionView, PendingApproval, PipelineRuns, PortResult, TestRecords};
    use serde_json::json;

    use super::*;

    /// What the officer had read when the answer went out.
    struct ReadBeforeAnswer {
        runs: Arc<FakeRuns>,
        screen: Arc<Mutex<Vec<u8>>>,
        read: Mutex<Option<String>>,
    }

    #[async_trait]
    impl PipelineRuns for ReadBeforeAnswer {
        async fn start(&self, pipeline: &str, package: &ModelPackageArn, token: &str) -> PortResult<String> {
            self.runs.start(pipeline, package, token).await
        }
        async fn execution(&self, pipeline: &str, execution_id: &str) -> PortResult<Option<ExecutionView>> {
            self.runs.execution(pipeline, execution_id).await
        }
        async fn action_runs(&self, pipeline: &str, execution_id: &str) -> PortResult<Vec<ActionRun>> {
            self.runs.action_runs(pipeline, execution_id).await
        }
        async fn stop(&self, pipeline: &str, execution_id: &str, reason: &str) -> PortResult<()> {
            self.runs.stop(pipeline, execution_id, reason).await
        }
        async fn pending_approval(&self, pipeline: &str, stage: &str, action: &str) -> PortResult<Option<PendingApproval>> {
            self.runs.pending_approval(pipeline, stage, action).await
        }
        async fn answer_approval(&self, pipeline: &str, stage: &str, action: &str, token: &str, approve: bool, summary: &str) -> PortResult<()> {
            *self.read.lock().unwrap() = Some(String::from_utf8_lossy(&self.screen.lock().unwrap()).into_owned());
            self.runs.answer_approval(pipeline, stage, action, token, approve, summary).await
        }
        async fn approval_result(&self, pipeline: &str, execution_id: &str, action: &str) -> PortResult<Option<ApprovalResult>> {
            self.runs.approval_result(pipeline, execution_id, action).await
        }
    }

    struct Screen(Arc<Mutex<Vec<u8>>>);

    impl Write for Screen {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn the_test_results_are_shown_before_the_answer_goes_out() {
        let world = DeployWorld::new(0);
        let execution = world.runs.start("p", &world.package, "t").await.unwrap();
        *world.runs.pending.lock().unwrap() = Some(PendingApproval { token: "tok".into(), execution_id: Some(execution.clone()) });
        let report = passed_tests(&world, &execution).await.to_string();
        let report = report.as_str();
        let tests = AuditEntry {
            source: world.package.clone(),
            at: chrono::Utc::now(),
            event_id: "job".into(),
            action: promotion_core::domain::audit::AuditAction::TestsPassed,
            detail: json!({ "report": report, "passed": 2, "failed": 0 }),
        };
        world.ledger.append(&tests).await.unwrap();
        let screen = Arc::new(Mutex::new(Vec::new()));
        let watching = Arc::new(ReadBeforeAnswer { runs: world.runs.clone(), screen: screen.clone(), read: Mutex::new(None) });
        let mut ports = world.ports.clone();
        ports.runs = watching.clone();

        decide_prod(&ports, &world.config, world.package.group(), true, "risk review passed", &mut Screen(screen.clone())).await.unwrap();

        let read = watching.read.lock().unwrap().clone().expect("the approval was answered");
        assert!(read.contains(&format!("tests of {} (execution {execution}): tests-passed", world.package)) && read.contains(report), "{read}");
        assert!(!read.contains("approved"), "the decision is printed after the answer: {read}");
        assert_eq!(world.runs.answers.lock().unwrap().as_slice(), [("tok".to_owned(), true, "risk review passed".to_owned())]);
        assert!(String::from_utf8_lossy(&screen.lock().unwrap()).ends_with(&format!("approved {} for prod\n", world.package)));
    }

    /// What test-model leaves of a pass in `execution`: a locked report and the ledger's record of it.
    async fn passed_tests(world: &DeployWorld, execution: &str) -> S3Uri {
        let report: S3Uri = format!("s3://{DEPLOY_WORLD_EVIDENCE_BUCKET}/reports/churn-prediction-111111111111/1/test-job-attempt-1.json").parse().unwrap();
        let bytes = br#"{"passed": 2, "failed": 0}"#.to_vec();
        let stored = world.store.put_once(&report, bytes.clone(), "application/json", chrono::Utc::now()).await.unwrap();
        let record = TestRecord {
            execution_id: execution.into(),
            package: world.package.clone(),
            stage: Stage::Test,
            fingerprint: ReleaseFingerprint::of(b"release"),
            passed: true,
            job_id: "job".into(),
            report: report.clone(),
            report_version: Some(stored.version_id),
            report_sha256: promotion_core::domain::naming::hex_sha256(&bytes),
            at: chrono::Utc::now(),
        };
        world.ledger.record_test(&record).await.unwrap();
        report
    }

    #[tokio::test]
    async fn an_approval_whose_report_was_written_over_is_refused_with_exit_code_1_and_nothing_is_sent() {
        let world = DeployWorld::new(0);
        let execution = world.runs.start("p", &world.package, "t").await.unwrap();
        *world.runs.pending.lock().unwrap() = Some(PendingApproval { token: "tok".into(), execution_id: Some(execution.clone()) });
        let report = passed_tests(&world, &execution).await;
        world.store.put_object(&report, br#"{"passed": 2, "failed": 0, "written": "over"}"#.to_vec());
        let mut screen = Vec::new();

        let error = decide_prod(&world.ports, &world.config, world.package.group(), true, "looks fine", &mut screen).await.unwrap_err();

        let failed = crate::exit::explain(&error);
        assert_eq!(failed.exit, crate::exit::Exit::Refused);
        assert!(failed.cause.contains("Rejected.EvidenceChanged") && failed.cause.contains("someone wrote over the report"), "{failed:?}");
        assert!(failed.hint.contains("do not approve"), "{failed:?}");
        assert!(world.runs.answers.lock().unwrap().is_empty(), "nothing is sent to CodePipeline");
        assert!(!String::from_utf8(screen).unwrap().contains("approved"));
    }

    #[tokio::test]
    async fn the_short_form_names_the_version_and_says_the_results_in_words() {
        let world = DeployWorld::new(0);
        let execution = world.runs.start("p", &world.package, "t").await.unwrap();
        *world.runs.pending.lock().unwrap() = Some(PendingApproval { token: "tok".into(), execution_id: Some(execution) });
        let report = "s3://model-promotion-artifacts-222222222222/reports/churn-prediction-111111111111/1/test-job.json";
        let tests = AuditEntry::now(
            &world.package,
            "job",
            promotion_core::domain::audit::AuditAction::TestsPassed,
            json!({ "report": report, "passed": 2, "failed": 0 }),
        );
        world.ledger.append(&tests).await.unwrap();
        let mut screen = Vec::new();

        decide_prod_shown(&world.ports, &world.config, (world.package.group(), false, "latency"), &mut screen, false).await.unwrap();

        let short = crate::ui::short(&world.package);
        assert_eq!(
            String::from_utf8(screen).unwrap(),
            format!("tests of {short}: tests-passed, 2 passed, 0 failed, report test-job.json\nrejected {short} for prod\n")
        );
    }

    #[tokio::test]
    async fn nothing_is_answered_for_a_model_that_waits_for_no_approval() {
        let world = DeployWorld::new(0);
        let mut screen = Vec::new();
        let other: GroupName = "fraud-detection-111111111111".parse().unwrap();

        let error = decide_prod(&world.ports, &world.config, &other, true, "", &mut screen).await.unwrap_err();

        assert!(error.to_string().contains("no pipeline execution of fraud-detection-111111111111 waits"), "{error}");
        assert!(screen.is_empty() && world.runs.answers.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_central_approver_may_not_approve_prod_and_nothing_is_sent() {
        let world = DeployWorld::new(0);
        let execution = world.runs.start("p", &world.package, "t").await.unwrap();
        *world.runs.pending.lock().unwrap() = Some(PendingApproval { token: "tok".into(), execution_id: Some(execution) });
        let mut screen = Vec::new();
        // erik approved the version centrally (the fake world's ML engineer), from the same role.
        let erik = "arn:aws:sts::222222222222:assumed-role/ml-engineer/erik";

        let error = decide_prod_as(&world.ports, &world.config, (world.package.group(), true, "looks fine"), erik, &mut screen, false).await.unwrap_err();

        assert_eq!(crate::exit::explain(&error).exit, crate::exit::Exit::Refused, "{error:#}");
        assert!(error.to_string().contains("CentralApproval"), "{error:#}");
        assert!(world.runs.answers.lock().unwrap().is_empty(), "nothing was sent to CodePipeline");
        assert!(screen.is_empty());
        assert!(world.audit_actions().contains(&"refused".to_owned()), "{:?}", world.audit_actions());
    }
}
