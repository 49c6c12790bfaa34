//! `promote invoke`: what an operator replays is the event a function got, whether they saved
//! the event itself or the record Lambda's on-failure destination sent to the dead-letter queue.

use serde_json::Value;

/// The event inside a Lambda destination record (`requestPayload`), or the payload as it is.
pub fn lambda_event(payload: Value) -> Value {
    match payload {
        Value::Object(mut record) if record.contains_key("requestPayload") => record.remove("requestPayload").unwrap_or_default(),
        event => event,
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
    fn an_event_saved_as_it_came_is_replayed_unchanged() {
        for name in ["model-package-approved.json", "codepipeline-job-deploy-test.json", "codepipeline-approval-succeeded.json"] {
            assert_eq!(lambda_event(event(name)), event(name), "{name}");
        }
    }
}
