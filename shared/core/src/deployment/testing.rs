//! Pipeline jobs and versions over the fakes, for the tests of this module.

use serde_json::{json, Value};

use crate::domain::event::ApprovalStatus;
use crate::domain::ids::{ModelPackageArn, Stage};
use crate::domain::ledger::PromotionState;
use crate::domain::pipeline::PipelineStage;
use crate::fakes::{world_job_parameters, DeployWorld};

use super::gate;

use super::job::JobOutcome;

/// A `CodePipeline.job` event of a deploy-model or test-model action.
pub fn job_event(id: &str, stage: Stage, package: &ModelPackageArn, continuation: Option<&str>) -> Value {
    let parameters = world_job_parameters(stage, package);
    let mut data = json!({
        "actionConfiguration": { "configuration": { "FunctionName": "deploy-model", "UserParameters": parameters } },
        "artifactCredentials": { "accessKeyId": "AKIA-TEST", "secretAccessKey": "secret", "sessionToken": "token" },
    });
    if let Some(token) = continuation {
        data["continuationToken"] = token.into();
    }
    json!({ "CodePipeline.job": { "id": id, "accountId": "222222222222", "data": data } })
}

/// The end of an invocation that starts now, as deploy-model's two-minute timeout sets it.
pub fn deadline() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now() + chrono::Duration::minutes(2)
}

/// Runs deploy-model to its final answer as CodePipeline does: each invocation a job of its
/// own, carrying the continuation token of the last answer.
pub async fn deploy(world: &DeployWorld, package: &ModelPackageArn, stage: Stage) -> JobOutcome {
    let run = uuid::Uuid::new_v4();
    world.pipeline_at(package, gate::rules::deploy_stage(stage));
    let mut continuation = None;
    for step in 0..20 {
        let event = job_event(&format!("job-{run}-{step}"), stage, package, continuation.as_deref());
        match super::deploy::handle_deploy_job(&world.ports, &world.config, &event, deadline()).await.expect("the job is answered") {
            JobOutcome::Continuing { continuation: token, .. } => continuation = Some(token),
            done => {
                // As CodePipeline does once DeployTest succeeded, it runs TestModel next.
                if stage == Stage::Test && matches!(done, JobOutcome::Succeeded { .. }) {
                    world.pipeline_at(package, PipelineStage::TestModel);
                }
                return done;
            }
        }
    }
    panic!("the deployment of {package} did not end in 20 jobs")
}

/// Version `version` of the world's group, promoted by the service and approved centrally.
pub fn add_version(world: &DeployWorld, version: u32) -> ModelPackageArn {
    let arn = ModelPackageArn::new("us-east-1", &"222222222222".parse().expect("account"), world.package.group(), version);
    let mut package = world.central.packages.lock().unwrap()[world.package.as_str()].clone();
    package.arn = arn.clone();
    package.status = Some(ApprovalStatus::Approved);
    world.central.add(package);
    let source: ModelPackageArn = format!("arn:aws:sagemaker:us-east-1:111111111111:model-package/churn-prediction/{}", 100 + version).parse().expect("arn");
    world.promoted(&source, &arn);
    world.pipeline_at(&arn, PipelineStage::DeployTest);
    arn
}

/// The ledger and the central registry as promote-model leaves them when a dev rejection revokes
/// `version`, and the `ModelRevoked` event it publishes (a new envelope on every call, as a
/// republication on a redelivered rejection has).
pub fn revoked_in_dev(world: &DeployWorld, version: &ModelPackageArn) -> Value {
    let dev_event = format!("dev-rejection-{}", version.version());
    let (source, reason) = {
        let mut records = world.ledger.records.lock().expect("records");
        let record = records.values_mut().find(|r| r.central_package.as_ref() == Some(version)).expect("a promotion of the version");
        let reason = format!("Revoked: source version {} was rejected in dev account 111111111111 (event {dev_event})", record.source);
        (record.state, record.event_id, record.reason) = (PromotionState::Revoked, dev_event.clone(), Some(reason.clone()));
        (record.source.clone(), reason)
    };
    world.ledger.promoted_from.lock().expect("pointers").insert(version.to_string(), source.clone());
    world.central.packages.lock().expect("packages").get_mut(version.as_str()).expect("registered").status = Some(ApprovalStatus::Rejected);
    let detail = crate::domain::revocation::ModelRevoked { source_package: source, central_package: version.clone(), event_id: dev_event, reason };
    json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "account": "222222222222",
        "source": "model-promotion",
        "detail-type": crate::domain::revocation::REVOKED_DETAIL_TYPE,
        "time": chrono::Utc::now().to_rfc3339(),
        "detail": detail,
    })
}
