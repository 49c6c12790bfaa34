//! `promote audit verify`: each model's chain walked from its first entry to its head.

use serde::Serialize;

use crate::domain::chain::{verify, Break, Head};
use crate::domain::ids::GroupName;
use crate::ports::{AuditTrail, PortResult};

/// One model's chain, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    pub model: GroupName,
    #[serde(flatten)]
    pub verdict: Verdict,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Verified {
        entries: u64,
        head: Head,
    },
    /// The first broken link.
    Broken {
        seq: u64,
        what: Break,
    },
}

impl ChainReport {
    pub fn is_broken(&self) -> bool {
        matches!(self.verdict, Verdict::Broken { .. })
    }
}

/// Verifies `model`'s chain, or every model's. Only a read of the trail can fail: a broken chain
/// is a report, not an error.
pub async fn verify_chains(trail: &dyn AuditTrail, model: Option<&GroupName>) -> PortResult<Vec<ChainReport>> {
    let models = match model {
        Some(model) => vec![model.clone()],
        None => trail.chained_models().await?,
    };
    let mut reports = Vec::with_capacity(models.len());
    for model in models {
        let chain = trail.chain(&model).await?;
        let verdict = match verify(&model, &chain) {
            Ok(verified) => Verdict::Verified { entries: verified.entries, head: verified.head },
            Err(broken) => {
                tracing::info!(model = %model, seq = broken.seq, what = %broken.what, "audit chain broken");
                Verdict::Broken { seq: broken.seq, what: broken.what }
            }
        };
        reports.push(ChainReport { model, verdict });
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::audit::{AuditAction, AuditEntry};
    use crate::fakes::FakeLedger;

    const DEV: &str = "arn:aws:sagemaker:us-east-1:111111111111:model-package/churn/3";
    const CENTRAL: &str = "arn:aws:sagemaker:us-east-1:222222222222:model-package/churn-111111111111/1";
    const OTHER: &str = "arn:aws:sagemaker:us-east-1:222222222222:model-package/fraud-111111111111/1";

    async fn trail() -> FakeLedger {
        let ledger = FakeLedger::default();
        for (package, event) in [(DEV, "e-1"), (CENTRAL, "job-1"), (OTHER, "job-2"), (CENTRAL, "job-3"), (CENTRAL, "job-4")] {
            ledger.append(&AuditEntry::now(&package.parse().unwrap(), event, AuditAction::DeployStarted, json!({}))).await.unwrap();
        }
        ledger
    }

    fn churn() -> GroupName {
        "churn-111111111111".parse().unwrap()
    }

    #[tokio::test]
    async fn every_chain_is_verified_and_an_intact_one_reports_its_head() {
        let ledger = trail().await;

        let reports = verify_chains(&ledger, None).await.unwrap();

        let verdicts: Vec<(String, bool)> = reports.iter().map(|r| (r.model.to_string(), r.is_broken())).collect();
        assert_eq!(verdicts, [("churn-111111111111".to_owned(), false), ("fraud-111111111111".to_owned(), false)]);
        let head = ledger.chains.lock().unwrap().heads["churn-111111111111"].clone();
        assert_eq!(reports[0].verdict, Verdict::Verified { entries: 4, head });
        assert_eq!(serde_json::to_value(&reports[1]).unwrap()["verdict"], "verified");
    }

    #[tokio::test]
    async fn a_rewritten_or_removed_entry_is_named_in_its_model_only() {
        let ledger = trail().await;
        ledger.chains.lock().unwrap().links.get_mut("churn-111111111111").unwrap().get_mut(&2).unwrap().recorded.detail = "{\"by\":\"mallory\"}".into();

        let reports = verify_chains(&ledger, None).await.unwrap();

        assert_eq!(reports[0].verdict, Verdict::Broken { seq: 2, what: Break::Rewritten });
        assert!(!reports[1].is_broken(), "{:?}", reports[1]);
        let json = serde_json::to_value(&reports[0]).unwrap();
        assert_eq!(json, json!({ "model": "churn-111111111111", "verdict": "broken", "seq": 2, "what": { "kind": "rewritten" } }));

        let ledger = trail().await;
        ledger.chains.lock().unwrap().links.get_mut("churn-111111111111").unwrap().remove(&3);
        let reports = verify_chains(&ledger, Some(&churn())).await.unwrap();
        assert_eq!(reports, [ChainReport { model: churn(), verdict: Verdict::Broken { seq: 3, what: Break::Removed { through: 3 } } }]);
    }

    #[tokio::test]
    async fn a_chain_cut_back_with_its_head_moved_back_is_betrayed_by_its_identities() {
        let ledger = trail().await;
        {
            let mut chains = ledger.chains.lock().unwrap();
            let links = chains.links.get_mut("churn-111111111111").unwrap();
            links.split_off(&3);
            let kept = links[&2].clone();
            chains.heads.insert("churn-111111111111".into(), promotion_core_head(&kept));
        }

        let reports = verify_chains(&ledger, Some(&churn())).await.unwrap();

        let lost = Break::Lost { package: CENTRAL.into(), event_id: "job-3".into(), action: "deploy-started".into() };
        assert_eq!(reports[0].verdict, Verdict::Broken { seq: 3, what: lost });
    }

    fn promotion_core_head(link: &crate::domain::chain::Link) -> Head {
        Head { seq: link.seq, hash: link.hash.clone() }
    }
}
