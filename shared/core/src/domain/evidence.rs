//! Test reports as evidence: each written once, under compliance-mode Object Lock, and known by
//! its key, its version and the SHA-256 of its bytes. What a reader checks before trusting one.

use base64::Engine;
use sha2::{Digest, Sha256};

use super::ids::S3Uri;
use super::ledger::TestRecord;

/// The longest version id test-model publishes for the prod approval (`ReportVersion` in
/// infra/pipeline.json, whose link must stay within CodePipeline's 1000 characters). S3's
/// version ids are 32 characters; S3 documents no more than 1024 bytes, so a longer one is
/// refused rather than cut.
pub const REPORT_VERSION_MAX: usize = 128;

/// The SHA-256 of `bytes` as S3's `ChecksumSHA256` carries it: base64.
pub fn sha256_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes))
}

/// A base64 SHA-256 (S3's form) in lowercase hex (the ledger's and `sha256sum`'s form); `None`
/// for anything but 32 bytes in base64.
pub fn base64_sha256_to_hex(encoded: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).ok().filter(|b| b.len() == 32)?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Why a stored report is not the evidence the ledger recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceProblem {
    #[error("the test record of {0} names no version of the report: which bytes were tested is unknown")]
    NoVersion(S3Uri),
    #[error("{report} is now version {current}, not version {recorded} that test-model wrote: someone wrote over the report, so its link shows other bytes than the ones tested")]
    Replaced { report: S3Uri, recorded: String, current: String },
    #[error("version {version} of {report} has SHA-256 {found}, not {recorded} as the ledger recorded: these are not the bytes test-model wrote")]
    DigestMismatch { report: S3Uri, version: String, recorded: String, found: String },
}

/// Whether the report the ledger's `record` names is still what the tests wrote: the key's
/// current version (`current`, what its link opens) is the recorded one, and that version's
/// `bytes` have the recorded SHA-256.
pub fn check_report(record: &TestRecord, current: Option<&str>, bytes: &[u8]) -> Result<(), EvidenceProblem> {
    let recorded = record.report_version.as_deref().ok_or_else(|| EvidenceProblem::NoVersion(record.report.clone()))?;
    if current != Some(recorded) {
        return Err(EvidenceProblem::Replaced {
            report: record.report.clone(),
            recorded: recorded.to_owned(),
            current: current.unwrap_or("none (a delete marker hides it)").to_owned(),
        });
    }
    let found = super::naming::hex_sha256(bytes);
    if found != record.report_sha256 {
        return Err(EvidenceProblem::DigestMismatch {
            report: record.report.clone(),
            version: recorded.to_owned(),
            recorded: record.report_sha256.clone(),
            found,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::Stage;

    fn record(bytes: &[u8]) -> TestRecord {
        TestRecord {
            execution_id: "e-1".into(),
            package: "arn:aws:sagemaker:us-east-1:222222222222:model-package/churn-111111111111/1".parse().unwrap(),
            stage: Stage::Test,
            fingerprint: crate::domain::fingerprint::ReleaseFingerprint::of(b"release"),
            passed: true,
            job_id: "job-1".into(),
            report: "s3://evidence-b/reports/churn-111111111111/1/test-job-1-attempt-1.json".parse().unwrap(),
            report_version: Some("v1".into()),
            report_sha256: crate::domain::naming::hex_sha256(bytes),
            at: chrono::Utc::now(),
        }
    }

    #[test]
    fn s3s_base64_digest_reads_as_the_ledgers_hex_one() {
        let bytes = b"{\"passed\": 2}";
        assert_eq!(base64_sha256_to_hex(&sha256_base64(bytes)).unwrap(), crate::domain::naming::hex_sha256(bytes));
        assert_eq!(base64_sha256_to_hex("not base64!"), None);
        assert_eq!(base64_sha256_to_hex("AAAA"), None, "three bytes are no SHA-256");
    }

    #[test]
    fn only_the_recorded_version_with_the_recorded_bytes_is_the_evidence() {
        let record = record(b"report");
        assert_eq!(check_report(&record, Some("v1"), b"report"), Ok(()));

        let replaced = check_report(&record, Some("v2"), b"report").unwrap_err();
        assert!(matches!(replaced, EvidenceProblem::Replaced { ref current, .. } if current == "v2"), "{replaced}");
        let hidden = check_report(&record, None, b"report").unwrap_err();
        assert!(hidden.to_string().contains("delete marker"), "{hidden}");
        let changed = check_report(&record, Some("v1"), b"forged").unwrap_err();
        assert!(matches!(changed, EvidenceProblem::DigestMismatch { ref found, .. } if *found == crate::domain::naming::hex_sha256(b"forged")));
        let unversioned = TestRecord { report_version: None, ..record };
        assert!(matches!(check_report(&unversioned, Some("v1"), b"report"), Err(EvidenceProblem::NoVersion(_))));
    }
}
