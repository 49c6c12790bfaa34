//! The claim rule's table (`promotion_core::promotion::policy::CLAIM_CASES`) against DynamoDB on
//! moto: the condition expression of `DynamoLedger::claim` answers every case as the pure rule and
//! the fake ledger do.

use promotion_core::domain::ids::ModelPackageArn;
use promotion_core::fakes::run_claim_case;
use promotion_core::promotion::policy::CLAIM_CASES;
use promotion_tests::{TestWorld, EMULATOR};

#[tokio::test]
async fn dynamodb_answers_every_claim_case_as_the_rule_says() {
    let _shared = EMULATOR.read().await;
    let world = TestWorld::new().await;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut failures = Vec::new();
    for (index, case) in CLAIM_CASES.iter().enumerate() {
        let source: ModelPackageArn = format!("arn:aws:sagemaker:us-east-1:111111111111:model-package/claims-{}/{}", &run[..8], index + 1).parse().unwrap();
        if let Err(failure) = run_claim_case(world.ports.ledger.as_ref(), &source, case).await {
            failures.push(failure);
        }
    }
    assert!(failures.is_empty(), "DynamoDB and the claim rule disagree: {failures:#?}");
}
