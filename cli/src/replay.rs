//! `promote invoke`: what an operator replays is the event a function got, whether they saved
//! the event itself or the record Lambda's on-failure destination sent to the dead-letter queue.

use serde_json::Value;

use crate::ui;

/// The event inside a Lambda destination record (`requestPayload`), or the payload as it is.
pub fn lambda_event(payload: Value) -> Value {
    match payload {
        Value::Object(mut record) if record.contains_key("requestPayload") => record.remove("requestPayload").unwrap_or_default(),
        event => event,
    }
}

/// A function's answer in one line: what it did, with short names.
pub fn describe(outcome: &Value) -> String {
    let text = |key: &str| outcome[key].as_str().unwrap_or_default().to_owned();
    let name = |key: &str| ui::shorten(&text(key));
    let source = || format!("dev {}", name("source"));
    match (outcome["outcome"].as_str(), outcome["job_result"].as_str()) {
        (Some("promoted"), _) => {
            let artifacts = outcome["artifacts"].as_array().map_or(&[][..], Vec::as_slice);
            let bytes: u64 = artifacts.iter().filter_map(|a| a["size"].as_u64()).sum();
            format!(
                "promoted {} as {}: {} artifacts ({}) copied and verified, model card v{}",
                source(),
                name("central_package"),
                artifacts.len(),
                size(bytes),
                outcome["model_card_version"]
            )
        }
        (Some("already_promoted"), _) => format!("already promoted: {} is {}; nothing new was made", source(), name("central_package")),
        (Some("revoked"), _) => format!("revoked {}: {}", name("central_package"), name("reason")),
        (Some("rejection_recorded"), _) => format!("recorded the rejection of {} (nothing had been promoted)", source()),
        (Some("started"), _) => format!("pipeline started for {} (execution {})", name("package"), text("execution_id")),
        (Some("already_started"), _) => format!("pipeline already started for {} (execution {})", name("package"), text("execution_id")),
        (Some("recorded"), _) => format!("recorded {} for {}", text("action"), name("package")),
        (Some("ignored"), _) => format!("ignored: {}", name("reason")),
        (Some("approver_recorded"), _) => {
            let approver = &outcome["approver"];
            let version = ui::shorten(approver["package"].as_str().unwrap_or_default());
            let who = approver["principal"].as_str().unwrap_or("no principal");
            format!("recorded {} of {version} by {who}", approver["gate"].as_str().unwrap_or_default())
        }
        (Some("approver_kept"), _) => format!("the {} of {} was recorded already: the first record stays", text("gate"), name("package")),
        (_, Some("succeeded")) => format!("succeeded: {}", name("summary")),
        (_, Some("continuing")) => format!("continuing (CodePipeline invokes again): {}", name("summary")),
        (_, Some("failed")) => format!("job failed ({}): {}", text("error_type"), name("message")),
        _ => outcome.to_string(),
    }
}

/// `2.8 MiB`
fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(name: &str) -> Value {
        serde_json::from_str(&std::fs::read_to_string(format!("{}/../events/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()).unwrap()
    }

    #[test]
    fn a_dead_lettered_destination_record_replays_the_event_it_wraps() {
        let approval = event("model-package-approved.json");
        let record = json!({
            "version": "1.0",
            "timestamp": "2026-11-21T10:16:02.118Z",
            "requestContext": {
                "requestId": "9b6f2b0e-1d1c-4f6a-9d7e-3f2a1b0c9d8e",
                "functionArn": "arn:aws:lambda:us-east-1:222222222222:function:promote-model:$LATEST",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": 3
            },
            "requestPayload": approval,
            "responseContext": { "statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled" },
            "responsePayload": { "errorType": "Retryable.Throttling", "errorMessage": "slow down" }
        });

        assert_eq!(lambda_event(record), approval);
    }

    #[test]
    fn an_outcome_reads_as_one_line_with_short_names() {
        let promoted = json!({
            "outcome": "promoted",
            "source": "arn:aws:sagemaker:us-east-1:111111111111:model-package/churn-prediction/3",
            "central_package": "arn:aws:sagemaker:us-east-1:222222222222:model-package/churn-prediction-111111111111/1",
            "artifacts": [{ "size": 2_947_661 }, { "size": 186 }],
            "model_card_version": 1,
        });
        assert_eq!(
            describe(&promoted),
            "promoted dev churn-prediction v3 as churn-prediction-111111111111 v1: 2 artifacts (2.8 MiB) copied and verified, model card v1"
        );
        let failed = json!({ "job_result": "failed", "error_type": "Rejected.TestsFailed", "message": "1 of 2 test cases failed" });
        assert_eq!(describe(&failed), "job failed (Rejected.TestsFailed): 1 of 2 test cases failed");
    }

    #[test]
    fn an_event_saved_as_it_came_is_replayed_unchanged() {
        for name in ["model-package-approved.json", "codepipeline-job-deploy-test.json", "codepipeline-approval-succeeded.json"] {
            assert_eq!(lambda_event(event(name)), event(name), "{name}");
        }
    }
}
