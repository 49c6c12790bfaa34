//! Every side door of deploy-model, opened over the fakes: each is refused with a typed error,
//! leaves the stage accounts untouched, and leaves a `refused` entry in the version's trail.

use serde_json::Value;

use crate::deployment::deploy::handle_deploy_job;
use crate::deployment::job::JobOutcome;
use crate::deployment::testing::{add_version, deadline, deploy, job_event};
use crate::domain::audit::AuditAction;
use crate::domain::ids::{ModelPackageArn, Stage};
use crate::domain::ledger::PromotionState;
use crate::domain::pipeline::PipelineStage;
use crate::fakes::{world_execution, DeployWorld, WORLD_MODEL_DATA};
use crate::ports::{ActionRunStatus, EndpointStatus};

/// Runs one deploy-model job and says how it was answered.
async fn job(world: &DeployWorld, stage: Stage, package: &ModelPackageArn, continuation: Option<&str>) -> JobOutcome {
    handle_deploy_job(&world.ports, &world.config, &job_event("job-attack", stage, package, continuation), deadline()).await.expect("the job is answered")
}

fn refused_as(outcome: &JobOutcome, error_type: &str) {
    match outcome {
        JobOutcome::Failed { error_type: got, .. } => assert_eq!(got, error_type, "{outcome:?}"),
        other => panic!("expected {error_type}, got {other:?}"),
    }
}

/// Nothing was asked of either stage account, and the version's trail says why.
fn untouched_and_audited(world: &DeployWorld, package: &ModelPackageArn, refusal: &str) {
    assert!(world.test.calls.lock().unwrap().is_empty(), "test account: {:?}", world.test.calls.lock().unwrap());
    assert!(world.prod.calls.lock().unwrap().is_empty(), "prod account: {:?}", world.prod.calls.lock().unwrap());
    assert!(world.test.endpoints.lock().unwrap().is_empty() && world.prod.endpoints.lock().unwrap().is_empty());
    let audit = world.ledger.audit.lock().unwrap();
    let refused: Vec<&Value> = audit.values().filter(|e| &e.source == package && e.action == AuditAction::Refused).map(|e| &e.detail).collect();
    assert_eq!(refused.len(), 1, "one refusal in the trail of {package}");
    assert_eq!(refused[0]["refusal"], refusal);
    assert_eq!(refused[0]["gate"], "deploy-model");
    assert!(!audit.values().any(|e| &e.source == package && e.action == AuditAction::DeployStarted), "no deployment began");
}

#[tokio::test]
async fn a_hand_made_job_for_a_version_the_service_never_promoted_is_refused() {
    let world = DeployWorld::new(0);
    let stray = add_version(&world, 7);
    world.ledger.promoted_from.lock().unwrap().remove(stray.as_str());

    let outcome = job(&world, Stage::Test, &stray, None).await;

    refused_as(&outcome, "Rejected.NeverPromoted");
    untouched_and_audited(&world, &stray, "NeverPromoted");
}

#[tokio::test]
async fn a_version_revoked_in_dev_and_re_approved_by_hand_in_the_registry_is_refused() {
    let world = DeployWorld::new(0);
    for record in world.ledger.records.lock().unwrap().values_mut() {
        record.state = PromotionState::Revoked;
    }

    let outcome = job(&world, Stage::Test, &world.package.clone(), None).await;

    refused_as(&outcome, "Rejected.NotPromoted");
    untouched_and_audited(&world, &world.package, "NotPromoted");
}

#[tokio::test]
async fn a_version_that_never_ran_its_tests_in_this_execution_does_not_reach_prod() {
    let world = DeployWorld::new(0);
    world.pipeline_at(&world.package, PipelineStage::DeployProd);
    world.ledger.tests.lock().unwrap().clear();

    let outcome = job(&world, Stage::Prod, &world.package.clone(), None).await;

    refused_as(&outcome, "Rejected.NotTested");
    untouched_and_audited(&world, &world.package, "NotTested");
}

#[tokio::test]
async fn a_version_whose_prod_approval_was_not_given_does_not_reach_prod() {
    let world = DeployWorld::new(0);
    world.pipeline_at(&world.package, PipelineStage::DeployProd);
    let execution = world_execution(&world.package);
    world
        .runs
        .action_runs
        .lock()
        .unwrap()
        .get_mut(&execution)
        .unwrap()
        .iter_mut()
        .filter(|r| r.stage == "ApproveProd")
        .for_each(|r| r.status = ActionRunStatus::Failed);

    let outcome = job(&world, Stage::Prod, &world.package.clone(), None).await;

    refused_as(&outcome, "Rejected.NotApprovedForProd");
    untouched_and_audited(&world, &world.package, "NotApprovedForProd");
}

#[tokio::test]
async fn a_prod_job_while_codepipeline_runs_the_test_stage_is_not_a_run_of_deploy_prod() {
    let world = DeployWorld::new(0);

    let outcome = job(&world, Stage::Prod, &world.package.clone(), None).await;

    refused_as(&outcome, "Rejected.UnconfirmedJob");
    untouched_and_audited(&world, &world.package, "UnconfirmedJob");
}

#[tokio::test]
async fn a_job_that_names_another_versions_execution_or_none_is_refused() {
    let world = DeployWorld::new(0);
    let other = add_version(&world, 2);
    // The job claims v2 but names v1's execution, which CodePipeline runs for v1.
    let mut event = job_event("job-attack", Stage::Test, &other, None);
    let forged = serde_json::json!({ "stage": "test", "model_package_arn": other, "execution_id": world_execution(&world.package) }).to_string();
    event["CodePipeline.job"]["data"]["actionConfiguration"]["configuration"]["UserParameters"] = forged.into();
    let outcome = handle_deploy_job(&world.ports, &world.config, &event, deadline()).await.unwrap();
    refused_as(&outcome, "Rejected.UnconfirmedJob");

    let mut bare = job_event("job-bare", Stage::Test, &world.package, None);
    let without = serde_json::json!({ "stage": "test", "model_package_arn": world.package }).to_string();
    bare["CodePipeline.job"]["data"]["actionConfiguration"]["configuration"]["UserParameters"] = without.into();
    let outcome = handle_deploy_job(&world.ports, &world.config, &bare, deadline()).await.unwrap();
    refused_as(&outcome, "Rejected.UnconfirmedJob");

    assert!(world.test.calls.lock().unwrap().is_empty() && world.test.endpoints.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_central_spec_edited_between_test_and_prod_is_refused_at_prod() {
    let world = DeployWorld::new(0);
    assert!(matches!(deploy(&world, &world.package, Stage::Test).await, JobOutcome::Succeeded { .. }));
    world.pipeline_at(&world.package, PipelineStage::DeployProd);
    world.central.packages.lock().unwrap().get_mut(world.package.as_str()).unwrap().inference.containers[0]
        .environment
        .insert("SAGEMAKER_PROGRAM".into(), "evil.py".into());

    let outcome = job(&world, Stage::Prod, &world.package.clone(), None).await;

    refused_as(&outcome, "Rejected.ReleaseChanged");
    let JobOutcome::Failed { message, .. } = &outcome else { unreachable!() };
    assert!(message.contains("fingerprint"), "{message}");
    assert!(world.prod.calls.lock().unwrap().is_empty() && world.prod.endpoints.lock().unwrap().is_empty(), "prod untouched");
}

#[tokio::test]
async fn model_data_replaced_in_the_central_bucket_is_refused() {
    let world = DeployWorld::new(0);
    world.store.put_object(&WORLD_MODEL_DATA.parse().unwrap(), b"other weights".to_vec());

    let outcome = job(&world, Stage::Test, &world.package.clone(), None).await;

    refused_as(&outcome, "Rejected.ReleaseChanged");
    untouched_and_audited(&world, &world.package, "ReleaseChanged");
}

#[tokio::test]
async fn a_forged_continuation_cannot_point_the_deployment_at_another_endpoint_or_config() {
    let world = DeployWorld::new(0);
    world.test.create_endpoint_for_test("promoted-fraud-test", "promoted-fraud-v9-test");
    let forged = serde_json::json!({ "phase": "recreate", "endpoint": "promoted-fraud-test", "config": "promoted-fraud-v9-test" }).to_string();

    let outcome = job(&world, Stage::Test, &world.package.clone(), Some(&forged)).await;

    refused_as(&outcome, "Rejected.BadContinuation");
    assert!(world.test.calls.lock().unwrap().is_empty(), "{:?}", world.test.calls.lock().unwrap());
    assert_eq!(world.test.endpoint("promoted-fraud-test").unwrap().status, EndpointStatus::InService);
}

#[tokio::test]
async fn a_continuation_after_the_execution_was_stopped_does_nothing_more() {
    let world = DeployWorld::new(3);
    let JobOutcome::Continuing { continuation, .. } = job(&world, Stage::Test, &world.package.clone(), None).await else { panic!("the deployment goes on") };
    let calls_before = world.test.calls.lock().unwrap().len();
    world.runs.stopped.lock().unwrap().insert(world_execution(&world.package), "revoked".into());

    let outcome = job(&world, Stage::Test, &world.package.clone(), Some(&continuation)).await;

    refused_as(&outcome, "Rejected.UnconfirmedJob");
    assert_eq!(world.test.calls.lock().unwrap().len(), calls_before, "nothing more was asked of the test account");
}

#[tokio::test]
async fn a_tested_approved_unchanged_release_reaches_prod_and_its_trail_names_the_release() {
    let world = DeployWorld::new(0);
    assert!(matches!(deploy(&world, &world.package, Stage::Test).await, JobOutcome::Succeeded { .. }));

    let outcome = deploy(&world, &world.package, Stage::Prod).await;

    assert!(matches!(outcome, JobOutcome::Succeeded { .. }), "{outcome:?}");
    let fingerprint = world.ledger.record(&crate::fakes::DEPLOY_WORLD_SOURCE.parse().unwrap()).unwrap().fingerprint.unwrap();
    let audit = world.ledger.audit.lock().unwrap();
    let started: Vec<&Value> = audit.values().filter(|e| e.action == AuditAction::DeployStarted).map(|e| &e.detail).collect();
    assert!(started.iter().any(|d| d["stage"] == "prod" && d["release"] == fingerprint.as_str()), "{started:?}");
    assert!(world.prod.endpoint("promoted-churn-prediction-111111111111-prod").is_some());
}

#[test]
fn an_event_is_confirmed_only_by_what_codepipeline_reports() {
    use crate::deployment::gate::rules::{confirm_outcome, Confirmation, Reported};
    use crate::domain::pipeline::PipelineState;
    use crate::ports::ExecutionStatus;
    let action = |status| Reported::Action(Some(status));
    let cases = [
        (PipelineState::Succeeded, action(ActionRunStatus::Succeeded), Confirmation::Confirmed),
        (PipelineState::Succeeded, action(ActionRunStatus::InProgress), Confirmation::Pending),
        (PipelineState::Succeeded, action(ActionRunStatus::Failed), Confirmation::Contradicted("Failed".into())),
        (PipelineState::Failed, action(ActionRunStatus::Succeeded), Confirmation::Contradicted("Succeeded".into())),
        (PipelineState::Started, action(ActionRunStatus::Succeeded), Confirmation::Confirmed),
        (PipelineState::Started, Reported::Action(None), Confirmation::Contradicted("not run in this execution".into())),
        (PipelineState::Succeeded, Reported::Execution(ExecutionStatus::Succeeded), Confirmation::Confirmed),
        (PipelineState::Succeeded, Reported::Execution(ExecutionStatus::InProgress), Confirmation::Pending),
        (PipelineState::Stopped, Reported::Execution(ExecutionStatus::Succeeded), Confirmation::Contradicted("Succeeded".into())),
    ];
    for (claimed, reported, expected) in cases {
        assert_eq!(confirm_outcome(&claimed, &reported), expected, "{claimed:?} against {reported:?}");
    }
}

#[tokio::test]
async fn an_endpoint_that_runs_another_image_than_the_pinned_digest_fails_its_deployment() {
    let world = DeployWorld::new(1);
    let (repository, _) = crate::fakes::WORLD_IMAGE.split_once('@').unwrap();
    *world.test.resolved_images.lock().unwrap() = vec![format!("{repository}@sha256:{}", "2".repeat(64))];

    let outcome = deploy(&world, &world.package, Stage::Test).await;

    refused_as(&outcome, "Rejected.ImageChanged");
    let record =
        crate::ports::DeploymentRecords::deployment(world.ledger.as_ref(), Stage::Test, "promoted-churn-prediction-111111111111-test").await.unwrap().unwrap();
    assert_eq!(record.state, crate::domain::ledger::DeploymentState::Failed);
    let actions = world.audit_actions();
    assert!(
        actions.contains(&"refused".to_owned()) && actions.contains(&"deploy-failed".to_owned()) && !actions.contains(&"deployed".to_owned()),
        "{actions:?}"
    );
}

#[tokio::test]
async fn an_endpoint_that_runs_the_pinned_digest_is_deployed() {
    let world = DeployWorld::new(1);
    *world.test.resolved_images.lock().unwrap() = vec![crate::fakes::WORLD_IMAGE.to_owned()];

    let outcome = deploy(&world, &world.package, Stage::Test).await;

    assert!(matches!(outcome, JobOutcome::Succeeded { .. }), "{outcome:?}");
    assert_eq!(world.audit_actions(), ["deploy-started", "deployed"]);
}

/// The world's version at DeployProd, its approval answered by `approver` (CodePipeline's `updatedBy`).
fn prod_approved_by(world: &DeployWorld, approver: Option<&str>) {
    world.pipeline_at(&world.package, PipelineStage::DeployProd);
    let execution = world_execution(&world.package);
    let mut runs = world.runs.action_runs.lock().unwrap();
    let approval = runs.get_mut(&execution).unwrap().iter_mut().find(|r| r.stage == "ApproveProd").unwrap();
    approval.updated_by = approver.map(str::to_owned);
}

#[tokio::test]
async fn the_person_who_approved_centrally_cannot_also_approve_prod() {
    let world = DeployWorld::new(0);
    // erik approved the central version as ml-engineer; he answers the prod approval from another role.
    prod_approved_by(&world, Some("arn:aws:sts::222222222222:assumed-role/model-promotion-governance/erik"));
    world.ledger.approvers.lock().unwrap().values_mut().for_each(|a| {
        if let crate::domain::identity::Principal::Role { source_identity, .. } = &mut a.normalised {
            if source_identity.as_deref() == Some("erik") {
                a.principal = Some("arn:aws:sts::222222222222:assumed-role/model-promotion-governance/erik".into());
                a.normalised = crate::domain::identity::Principal::from_arn("arn:aws:sts::222222222222:assumed-role/model-promotion-governance/erik");
            }
        }
    });

    let outcome = job(&world, Stage::Prod, &world.package.clone(), None).await;

    refused_as(&outcome, "Rejected.SameApprover");
    untouched_and_audited(&world, &world.package, "SameApprover");
}

#[tokio::test]
async fn a_prod_approval_without_a_resolvable_approver_is_never_taken_for_a_second_person() {
    let world = DeployWorld::new(0);
    prod_approved_by(&world, None);

    let outcome = job(&world, Stage::Prod, &world.package.clone(), None).await;

    refused_as(&outcome, "Rejected.ApproverUnknown");
    untouched_and_audited(&world, &world.package, "ApproverUnknown");
}

#[tokio::test]
async fn a_version_whose_dev_approver_the_ledger_never_learned_does_not_reach_prod() {
    let world = DeployWorld::new(0);
    prod_approved_by(&world, Some(crate::fakes::GOVERNANCE_OFFICER));
    world.ledger.approvers.lock().unwrap().retain(|(_, gate), _| *gate != crate::domain::identity::Gate::DevApproval);

    let outcome = job(&world, Stage::Prod, &world.package.clone(), None).await;

    refused_as(&outcome, "Rejected.ApproverUnknown");
    assert!(world.prod.calls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn with_separation_of_duties_off_the_same_person_may_approve_twice() {
    let mut world = DeployWorld::new(0);
    world.config.separation_of_duties = false;
    prod_approved_by(&world, None);

    let outcome = deploy_without_resetting(&world).await;

    assert!(matches!(outcome, JobOutcome::Succeeded { .. }), "{outcome:?}");
}

/// deploy-model to prod to its final answer, the pipeline left as the test set it.
async fn deploy_without_resetting(world: &DeployWorld) -> JobOutcome {
    let mut continuation = None;
    for step in 0..20 {
        let event = job_event(&format!("job-{step}"), Stage::Prod, &world.package, continuation.as_deref());
        match handle_deploy_job(&world.ports, &world.config, &event, deadline()).await.unwrap() {
            JobOutcome::Continuing { continuation: token, .. } => continuation = Some(token),
            done => return done,
        }
    }
    panic!("no final answer in 20 jobs")
}
