//! How one artifact is copied and how the copy is proven complete.

use base64::Engine;
use sha2::{Digest, Sha256};

/// S3's smallest multipart part (but the last) and most parts per upload.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
pub const MAX_PARTS: u64 = 10_000;
/// A single `CopyObject` stops at 5 GiB.
pub const SINGLE_COPY_MAX: u64 = 5 * 1024 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopySettings {
    pub multipart_threshold: u64,
    pub part_size: u64,
    pub concurrency: usize,
}

impl Default for CopySettings {
    fn default() -> Self {
        Self { multipart_threshold: 256 * 1024 * 1024, part_size: 128 * 1024 * 1024, concurrency: 8 }
    }
}

/// What a `HEAD` of an object tells.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObjectInfo {
    pub size: u64,
    pub etag: String,
    /// Base64 SHA-256, `…-N` when composed from N multipart parts.
    pub sha256: Option<String>,
    pub content_type: Option<String>,
    /// The source ETag recorded on a central copy: a copy to resume need not be redone.
    pub copied_from_etag: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub part_number: i32,
    pub first: u64,
    pub last: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyPlan {
    Single,
    Multipart(Vec<ByteRange>),
}

pub fn plan_copy(size: u64, settings: &CopySettings) -> CopyPlan {
    if size < settings.multipart_threshold.min(SINGLE_COPY_MAX) || size == 0 {
        return CopyPlan::Single;
    }
    let fewest_parts_size = size.div_ceil(MAX_PARTS);
    let part_size = settings.part_size.max(MIN_PART_SIZE).max(fewest_parts_size);
    let ranges = (0..size.div_ceil(part_size))
        .map(|index| ByteRange {
            part_number: i32::try_from(index + 1).expect("at most 10,000 parts"),
            first: index * part_size,
            last: ((index + 1) * part_size).min(size) - 1,
        })
        .collect();
    CopyPlan::Multipart(ranges)
}

/// S3's composite checksum: the SHA-256 of the parts' SHA-256 digests, with the part count.
pub fn composite_sha256(part_checksums: &[String]) -> Option<String> {
    let engine = base64::engine::general_purpose::STANDARD;
    let mut hasher = Sha256::new();
    for part in part_checksums {
        hasher.update(engine.decode(part).ok()?);
    }
    Some(format!("{}-{}", engine.encode(hasher.finalize()), part_checksums.len()))
}

pub fn is_full_object(checksum: &str) -> bool {
    !checksum.contains('-')
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CopyMismatch {
    #[error("size differs: source {original} bytes, copy {copy} bytes")]
    Size { original: u64, copy: u64 },
    #[error("the copy has no SHA-256 checksum")]
    NoChecksum,
    #[error("checksum differs: expected {expected}, the copy has {actual}")]
    Checksum { expected: String, actual: String },
}

/// Proves a copy whole: same size, and the checksum S3 stored equals what the copy reported
/// and, for a single copy of a source with a full-object checksum, the source's own.
pub fn verify_copy(source: &ObjectInfo, reported: Option<&str>, single_copy: bool, copy: &ObjectInfo) -> Result<String, CopyMismatch> {
    if source.size != copy.size {
        return Err(CopyMismatch::Size { original: source.size, copy: copy.size });
    }
    let actual = copy.sha256.as_deref().ok_or(CopyMismatch::NoChecksum)?;
    if let Some(expected) = reported.filter(|expected| *expected != actual) {
        return Err(CopyMismatch::Checksum { expected: expected.to_owned(), actual: actual.to_owned() });
    }
    verify_reported(source, actual, single_copy)
}

/// A copy just made, proven by its own answer: a server-side copy is whole or absent (it is
/// conditional on the source's ETag), and the SHA-256 S3 computed of the bytes it wrote must be
/// that of the stored copy and, for a single copy of an object with a full-object checksum, equal the source's.
pub fn verify_reported(source: &ObjectInfo, actual: &str, single_copy: bool) -> Result<String, CopyMismatch> {
    match source.sha256.as_deref().filter(|c| single_copy && is_full_object(c)) {
        Some(expected) if expected != actual => Err(CopyMismatch::Checksum { expected: expected.to_owned(), actual: actual.to_owned() }),
        _ => Ok(actual.to_owned()),
    }
}

/// A copy left by an earlier delivery counts only if it is of the same source object and whole.
pub fn reusable_copy(source: &ObjectInfo, existing: &ObjectInfo) -> Option<String> {
    let same_source = existing.copied_from_etag.as_deref() == Some(source.etag.as_str());
    let single = existing.sha256.as_deref().is_some_and(is_full_object);
    same_source.then(|| verify_copy(source, None, single, existing).ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn settings(threshold: u64, part: u64) -> CopySettings {
        CopySettings { multipart_threshold: threshold, part_size: part, concurrency: 4 }
    }

    #[test]
    fn small_objects_copy_in_one_call() {
        assert_eq!(plan_copy(10 * MIB, &settings(64 * MIB, 8 * MIB)), CopyPlan::Single);
        assert_eq!(plan_copy(0, &settings(0, 8 * MIB)), CopyPlan::Single);
    }

    #[test]
    fn large_objects_split_into_contiguous_ranges() {
        let CopyPlan::Multipart(parts) = plan_copy(21 * MIB, &settings(16 * MIB, 8 * MIB)) else { panic!("expected multipart") };
        assert_eq!(parts.len(), 3);
        assert_eq!((parts[0].first, parts[0].last), (0, 8 * MIB - 1));
        assert_eq!((parts[2].first, parts[2].last), (16 * MIB, 21 * MIB - 1));
        assert!(parts.windows(2).all(|w| w[1].first == w[0].last + 1));
    }

    #[test]
    fn objects_above_five_gib_are_never_copied_whole() {
        let huge = 6 * 1024 * MIB;
        assert!(matches!(plan_copy(huge, &settings(u64::MAX, 128 * MIB)), CopyPlan::Multipart(_)));
    }

    #[test]
    fn part_size_grows_to_stay_within_ten_thousand_parts_and_above_five_mib() {
        let CopyPlan::Multipart(parts) = plan_copy(100_000 * MIB, &settings(MIB, MIB)) else { panic!() };
        assert!(parts.len() as u64 <= MAX_PARTS);
        let CopyPlan::Multipart(parts) = plan_copy(20 * MIB, &settings(MIB, MIB)) else { panic!() };
        assert_eq!(parts.len(), 4);
    }

    #[test]
    fn composite_checksum_matches_s3s_definition() {
        let engine = base64::engine::general_purpose::STANDARD;
        let parts: Vec<String> = [b"a".as_slice(), b"b"].iter().map(|p| engine.encode(Sha256::digest(p))).collect();
        let mut expected = Sha256::new();
        expected.update(Sha256::digest(b"a"));
        expected.update(Sha256::digest(b"b"));
        assert_eq!(composite_sha256(&parts).unwrap(), format!("{}-2", engine.encode(expected.finalize())));
    }

    fn info(size: u64, sha: Option<&str>) -> ObjectInfo {
        ObjectInfo { size, etag: "\"e\"".into(), sha256: sha.map(str::to_owned), ..Default::default() }
    }

    #[test]
    fn verification_catches_size_and_checksum_differences() {
        let source = info(10, Some("AAA="));
        assert_eq!(verify_copy(&source, Some("AAA="), true, &info(10, Some("AAA="))), Ok("AAA=".into()));
        assert!(matches!(verify_copy(&source, Some("AAA="), true, &info(9, Some("AAA="))), Err(CopyMismatch::Size { .. })));
        assert!(matches!(verify_copy(&source, Some("AAA="), true, &info(10, Some("BBB="))), Err(CopyMismatch::Checksum { .. })));
        assert!(matches!(verify_copy(&source, None, true, &info(10, Some("BBB="))), Err(CopyMismatch::Checksum { .. })));
        assert_eq!(verify_copy(&source, None, true, &info(10, None)), Err(CopyMismatch::NoChecksum));
        assert_eq!(verify_copy(&source, Some("C-2"), false, &info(10, Some("C-2"))), Ok("C-2".into()));
    }

    #[test]
    fn a_copy_is_proven_by_the_checksum_its_answer_carries() {
        let source = info(10, Some("AAA="));
        assert_eq!(verify_reported(&source, "AAA=", true), Ok("AAA=".into()));
        assert!(matches!(verify_reported(&source, "BBB=", true), Err(CopyMismatch::Checksum { .. })));
        // A multipart copy's composite is checked against its parts' checksums, not the source's.
        assert_eq!(verify_reported(&source, "C-2", false), Ok("C-2".into()));
        // A source stored without a checksum: S3's computation of the copy is what is recorded.
        assert_eq!(verify_reported(&info(10, None), "DDD=", true), Ok("DDD=".into()));
    }

    #[test]
    fn only_whole_copies_of_the_same_source_are_reused() {
        let source = info(10, Some("AAA="));
        let mut existing = info(10, Some("AAA="));
        assert_eq!(reusable_copy(&source, &existing), None);
        existing.copied_from_etag = Some("\"e\"".into());
        assert_eq!(reusable_copy(&source, &existing), Some("AAA=".into()));
        existing.size = 9;
        assert_eq!(reusable_copy(&source, &existing), None);
    }
}
