//! Runs a case of `promotion::policy::CLAIM_CASES` against any promotion ledger: the fake here,
//! DynamoDB in the integration tests.

use chrono::{DateTime, Duration, SubsecRound, Utc};

use crate::domain::ids::ModelPackageArn;
use crate::domain::ledger::{Claim, ClaimResult, PromotionRecord, PromotionState};
use crate::ports::PromotionLedger;
use crate::promotion::policy::{claim_granted, ClaimCase, Existing};

/// Writes the case's existing record of `source` through the ledger's own calls, as the use cases
/// would, then claims it; `Err` says how the ledger (or the pure rule) answered otherwise.
pub async fn run_claim_case(ledger: &dyn PromotionLedger, source: &ModelPackageArn, case: &ClaimCase) -> Result<(), String> {
    // Whole seconds: DynamoDB keeps milliseconds.
    let now = Utc::now().trunc_subsecs(0);
    let at = |secs: i64| now + Duration::seconds(secs);
    let fail = |what: String| format!("{}: {what}", case.name);
    let expected_state = seed(ledger, source, case.existing, now, at).await.map_err(fail)?;
    let claim =
        Claim { source: source.clone(), event_id: "e-claim".into(), event_time: at(case.event_secs), owner: case.owner.into(), lease_until: at(60), now };
    let before = ledger.get(source).await.map_err(|e| fail(e.to_string()))?;
    if claim_granted(&claim, before.as_ref()) != case.granted {
        return Err(fail(format!("the pure rule says granted = {}", !case.granted)));
    }
    match ledger.claim(&claim).await.map_err(|e| fail(e.to_string()))? {
        ClaimResult::Granted(record) if case.granted && record.owner.as_deref() == Some(case.owner) && record.state == PromotionState::InProgress => Ok(()),
        ClaimResult::Held(record) if !case.granted && Some(record.state) == expected_state => Ok(()),
        other => Err(fail(format!("the ledger answered {other:?}"))),
    }
}

/// Writes the existing record; the state it has, if any.
async fn seed(
    ledger: &dyn PromotionLedger,
    source: &ModelPackageArn,
    existing: Existing,
    now: DateTime<Utc>,
    at: impl Fn(i64) -> DateTime<Utc>,
) -> Result<Option<PromotionState>, String> {
    let claim = |owner: &str, decided_secs: i64, lease_secs: i64| Claim {
        source: source.clone(),
        event_id: "e-seed".into(),
        event_time: at(decided_secs),
        owner: owner.into(),
        lease_until: at(lease_secs),
        now: now - Duration::hours(1),
    };
    let claimed = |result: ClaimResult| match result {
        ClaimResult::Granted(record) => Ok(record),
        ClaimResult::Held(record) => Err(format!("the seeding claim was held: {record:?}")),
    };
    let decided = |state: PromotionState, decided_secs: i64| PromotionRecord::new(source.clone(), state, "e-seed", at(decided_secs));
    let text = |e: crate::ports::PortError| e.to_string();
    match existing {
        Existing::Nothing => return Ok(None),
        Existing::Claimed { owner, lease_secs } => {
            claimed(ledger.claim(&claim(owner, 0, lease_secs)).await.map_err(text)?)?;
        }
        Existing::Released { owner } => {
            claimed(ledger.claim(&claim(owner, 0, 300)).await.map_err(text)?)?;
            ledger.release(source, owner).await.map_err(text)?;
        }
        Existing::Promoted { decided_secs } => {
            let mut record = claimed(ledger.claim(&claim("a", decided_secs, 300)).await.map_err(text)?)?;
            (record.state, record.owner, record.lease_until) = (PromotionState::Promoted, None, None);
            ledger.save(&record, "a").await.map_err(text)?;
        }
        Existing::Revoked { decided_secs } => {
            ledger.record_decision(&decided(PromotionState::Revoked, decided_secs)).await.map_err(text)?;
        }
        Existing::RejectedInDev { decided_secs } => {
            ledger.record_decision(&decided(PromotionState::RejectedInDev, decided_secs)).await.map_err(text)?;
        }
    }
    Ok(ledger.get(source).await.map_err(text)?.map(|r| r.state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::FakeLedger;
    use crate::promotion::policy::CLAIM_CASES;

    #[tokio::test]
    async fn the_fake_ledger_answers_every_claim_case_as_the_rule_says() {
        for (index, case) in CLAIM_CASES.iter().enumerate() {
            let source: ModelPackageArn = format!("arn:aws:sagemaker:us-east-1:111111111111:model-package/claims/{}", index + 1).parse().unwrap();
            run_claim_case(&FakeLedger::default(), &source, case).await.unwrap();
        }
    }
}
