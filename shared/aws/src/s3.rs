//! S3: server-side copies of artifacts into the central bucket; test reports written once into
//! the evidence bucket, under Object Lock.

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_s3::primitives::DateTime as S3DateTime;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, CompletedPart, MetadataDirective, ObjectLockMode, ServerSideEncryption};
use aws_sdk_s3::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use chrono::{DateTime, Utc};

use promotion_core::domain::copy::{ByteRange, ObjectInfo};
use promotion_core::domain::evidence::sha256_base64;
use promotion_core::domain::ids::{AccountId, S3Uri};
use promotion_core::ports::{ArtifactStore, CopiedPart, CopyTarget, FailureKind, PortError, PortResult, StoredVersion};

use crate::errors::classify;

/// Metadata on a central copy naming the source object version it was made from.
pub const SOURCE_ETAG_METADATA: &str = "source-etag";

/// A local endpoint (the emulator) serves buckets by path, not by host name.
pub fn client(sdk: &SdkConfig) -> Client {
    let config = aws_sdk_s3::config::Builder::from(sdk).force_path_style(sdk.endpoint_url().is_some()).build();
    Client::from_conf(config)
}

pub struct S3Artifacts {
    client: Client,
    central_account: String,
    kms_key_id: String,
}

impl S3Artifacts {
    pub fn new(client: Client, central_account: &AccountId, kms_key_id: &str) -> Self {
        Self { client, central_account: central_account.to_string(), kms_key_id: kms_key_id.to_owned() }
    }
}

/// `CopySource` is `bucket/key` with the key URL-encoded.
fn copy_source(uri: &S3Uri) -> String {
    let mut encoded = String::with_capacity(uri.key().len());
    for byte in uri.key().bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => encoded.push(byte as char),
            other => encoded.push_str(&format!("%{other:02X}")),
        }
    }
    format!("{}/{encoded}", uri.bucket())
}

#[async_trait]
impl ArtifactStore for S3Artifacts {
    async fn head(&self, uri: &S3Uri, expected_owner: &AccountId) -> PortResult<Option<ObjectInfo>> {
        let out = match self
            .client
            .head_object()
            .bucket(uri.bucket())
            .key(uri.key())
            .expected_bucket_owner(expected_owner.as_str())
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                let error = classify("HeadObject", &e);
                return if error.kind == FailureKind::NotFound { Ok(None) } else { Err(error) };
            }
        };
        Ok(Some(ObjectInfo {
            size: out.content_length().and_then(|n| u64::try_from(n).ok()).unwrap_or_default(),
            etag: out.e_tag().unwrap_or_default().to_owned(),
            sha256: out.checksum_sha256().map(str::to_owned),
            content_type: out.content_type().map(str::to_owned),
            copied_from_etag: out.metadata().and_then(|m| m.get(SOURCE_ETAG_METADATA)).cloned(),
        }))
    }

    async fn copy_whole(&self, source: &S3Uri, target: &CopyTarget<'_>) -> PortResult<Option<String>> {
        let out = self
            .client
            .copy_object()
            .bucket(target.destination.bucket())
            .key(target.destination.key())
            .copy_source(copy_source(source))
            .expected_source_bucket_owner(target.source_owner.as_str())
            .expected_bucket_owner(&self.central_account)
            .copy_source_if_match(target.source_etag)
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(&self.kms_key_id)
            .bucket_key_enabled(true)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .metadata_directive(MetadataDirective::Replace)
            .metadata(SOURCE_ETAG_METADATA, target.source_etag)
            .set_content_type(target.content_type.map(str::to_owned))
            .send()
            .await
            .map_err(|e| classify("CopyObject", &e))?;
        Ok(out.copy_object_result().and_then(|r| r.checksum_sha256()).map(str::to_owned))
    }

    async fn start_multipart(&self, target: &CopyTarget<'_>) -> PortResult<String> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(target.destination.bucket())
            .key(target.destination.key())
            .expected_bucket_owner(&self.central_account)
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(&self.kms_key_id)
            .bucket_key_enabled(true)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .metadata(SOURCE_ETAG_METADATA, target.source_etag)
            .set_content_type(target.content_type.map(str::to_owned))
            .send()
            .await
            .map_err(|e| classify("CreateMultipartUpload", &e))?;
        out.upload_id().map(str::to_owned).ok_or_else(|| PortError::new("CreateMultipartUpload", FailureKind::Retryable, "no upload id returned"))
    }

    async fn copy_part(&self, source: &S3Uri, target: &CopyTarget<'_>, upload_id: &str, range: ByteRange) -> PortResult<CopiedPart> {
        let out = self
            .client
            .upload_part_copy()
            .bucket(target.destination.bucket())
            .key(target.destination.key())
            .upload_id(upload_id)
            .part_number(range.part_number)
            .copy_source(copy_source(source))
            .copy_source_range(format!("bytes={}-{}", range.first, range.last))
            .copy_source_if_match(target.source_etag)
            .expected_source_bucket_owner(target.source_owner.as_str())
            .expected_bucket_owner(&self.central_account)
            .send()
            .await
            .map_err(|e| classify("UploadPartCopy", &e))?;
        let result = out.copy_part_result();
        Ok(CopiedPart {
            part_number: range.part_number,
            etag: result.and_then(|r| r.e_tag()).unwrap_or_default().to_owned(),
            sha256: result.and_then(|r| r.checksum_sha256()).map(str::to_owned),
        })
    }

    async fn complete_multipart(&self, destination: &S3Uri, upload_id: &str, parts: &[CopiedPart]) -> PortResult<Option<String>> {
        let parts =
            parts.iter().map(|p| CompletedPart::builder().part_number(p.part_number).e_tag(&p.etag).set_checksum_sha256(p.sha256.clone()).build()).collect();
        let out = self
            .client
            .complete_multipart_upload()
            .bucket(destination.bucket())
            .key(destination.key())
            .upload_id(upload_id)
            .expected_bucket_owner(&self.central_account)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(|e| classify("CompleteMultipartUpload", &e))?;
        Ok(out.checksum_sha256().map(str::to_owned))
    }

    async fn abort_multipart(&self, destination: &S3Uri, upload_id: &str) -> PortResult<()> {
        self.client
            .abort_multipart_upload()
            .bucket(destination.bucket())
            .key(destination.key())
            .upload_id(upload_id)
            .expected_bucket_owner(&self.central_account)
            .send()
            .await
            .map_err(|e| classify("AbortMultipartUpload", &e))?;
        Ok(())
    }

    async fn incomplete_uploads(&self, destination: &S3Uri) -> PortResult<Vec<String>> {
        let out = self
            .client
            .list_multipart_uploads()
            .bucket(destination.bucket())
            .prefix(destination.key())
            .expected_bucket_owner(&self.central_account)
            .send()
            .await
            .map_err(|e| classify("ListMultipartUploads", &e))?;
        Ok(out.uploads().iter().filter(|upload| upload.key() == Some(destination.key())).filter_map(|upload| upload.upload_id().map(str::to_owned)).collect())
    }

    async fn delete(&self, uri: &S3Uri) -> PortResult<()> {
        self.client
            .delete_object()
            .bucket(uri.bucket())
            .key(uri.key())
            .expected_bucket_owner(&self.central_account)
            .send()
            .await
            .map_err(|e| classify("DeleteObject", &e))?;
        Ok(())
    }

    async fn put(&self, uri: &S3Uri, body: Vec<u8>, content_type: &str) -> PortResult<()> {
        self.client
            .put_object()
            .bucket(uri.bucket())
            .key(uri.key())
            .expected_bucket_owner(&self.central_account)
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(&self.kms_key_id)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .content_type(content_type)
            .body(body.into())
            .send()
            .await
            .map_err(|e| classify("PutObject", &e))?;
        Ok(())
    }

    async fn read_small(&self, uri: &S3Uri, max_bytes: u64) -> PortResult<Vec<u8>> {
        self.read(uri, None, max_bytes).await
    }

    /// `If-None-Match: *` makes S3 refuse the write when the key holds an object (412), so no
    /// report is ever written over; the SHA-256 in the request makes S3 refuse bytes that do not
    /// match it (and the checksum header is what S3 asks of a write under Object Lock). The
    /// retention is set on the version itself, whatever the bucket's default.
    async fn put_once(&self, uri: &S3Uri, body: Vec<u8>, content_type: &str, retain_until: DateTime<Utc>) -> PortResult<StoredVersion> {
        let out = self
            .client
            .put_object()
            .bucket(uri.bucket())
            .key(uri.key())
            .expected_bucket_owner(&self.central_account)
            .if_none_match("*")
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(sha256_base64(&body))
            .object_lock_mode(ObjectLockMode::Compliance)
            .object_lock_retain_until_date(S3DateTime::from_secs(retain_until.timestamp()))
            .server_side_encryption(ServerSideEncryption::Aes256)
            .content_type(content_type)
            .body(body.into())
            .send()
            .await
            .map_err(|e| conditional("PutObject", &e))?;
        Ok(StoredVersion { version_id: out.version_id().unwrap_or_default().to_owned(), sha256: out.checksum_sha256().unwrap_or_default().to_owned() })
    }

    async fn read_version(&self, uri: &S3Uri, version_id: &str, max_bytes: u64) -> PortResult<Vec<u8>> {
        self.read(uri, Some(version_id), max_bytes).await
    }

    async fn current_version(&self, uri: &S3Uri) -> PortResult<Option<String>> {
        let head = self.client.head_object().bucket(uri.bucket()).key(uri.key()).expected_bucket_owner(&self.central_account).send().await;
        match head {
            Ok(out) => Ok(Some(out.version_id().unwrap_or_default().to_owned())),
            Err(e) => {
                let error = classify("HeadObject", &e);
                if error.kind == FailureKind::NotFound {
                    Ok(None)
                } else {
                    Err(error)
                }
            }
        }
    }
}

impl S3Artifacts {
    /// Reads an object whole, a version of it when `version_id` names one.
    async fn read(&self, uri: &S3Uri, version_id: Option<&str>, max_bytes: u64) -> PortResult<Vec<u8>> {
        let out = self
            .client
            .get_object()
            .bucket(uri.bucket())
            .key(uri.key())
            .set_version_id(version_id.map(str::to_owned))
            .expected_bucket_owner(&self.central_account)
            .send()
            .await
            .map_err(|e| classify("GetObject", &e))?;
        let size = out.content_length().and_then(|n| u64::try_from(n).ok()).unwrap_or(u64::MAX);
        if size > max_bytes {
            return Err(PortError::new("GetObject", FailureKind::Terminal, format!("{uri} is {size} bytes, more than {max_bytes}")));
        }
        let bytes = out.body.collect().await.map_err(|e| PortError::new("GetObject", FailureKind::Retryable, e.to_string()))?;
        Ok(bytes.to_vec())
    }
}

/// A conditional write that lost is a `Conflict`: the key holds an object (412
/// PreconditionFailed), or another conditional write to it is under way (409
/// ConditionalRequestConflict).
fn conditional<E>(operation: &'static str, error: &SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let mut classified = classify(operation, error);
    if matches!(error.as_service_error().and_then(ProvideErrorMetadata::code), Some("PreconditionFailed" | "ConditionalRequestConflict")) {
        classified.kind = FailureKind::Conflict;
    }
    classified
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_source_encodes_the_key_but_not_its_slashes() {
        let uri: S3Uri = "s3://bucket/dir/my model+v1.tar.gz".parse().unwrap();
        assert_eq!(copy_source(&uri), "bucket/dir/my%20model%2Bv1.tar.gz");
    }
}

#[cfg(test)]
mod retry_tests {
    use std::time::Duration;

    use aws_sdk_s3::config::retry::RetryConfig;
    use aws_sdk_s3::operation::head_object::HeadObjectOutput;
    use aws_smithy_mocks::{mock, RuleMode};

    use super::*;

    fn store(rules: &[&aws_smithy_mocks::Rule]) -> S3Artifacts {
        let client = mock_client!(aws_sdk_s3, RuleMode::Sequential, rules, |config| {
            config.retry_config(RetryConfig::standard().with_max_attempts(4).with_initial_backoff(Duration::from_millis(1)))
        });
        S3Artifacts::new(client, &"222222222222".parse().unwrap(), "key")
    }

    #[tokio::test]
    async fn server_errors_are_retried_then_the_answer_is_read() {
        let rule = mock!(Client::head_object)
            .sequence()
            .http_status(503, None)
            .times(2)
            .output(|| HeadObjectOutput::builder().content_length(42).e_tag("\"e\"").checksum_sha256("AAA=").build())
            .build();

        let head = store(&[&rule]).head(&"s3://b-1/k".parse().unwrap(), &"111111111111".parse().unwrap()).await.unwrap();

        assert_eq!(head.map(|h| (h.size, h.sha256)), Some((42, Some("AAA=".into()))));
        assert_eq!(rule.num_calls(), 3);
    }

    /// S3 refuses a copy whose source bucket another account owns: no confused deputy. moto does
    /// not enforce it, so the requests themselves are checked here.
    #[tokio::test]
    async fn every_copy_request_names_the_dev_account_as_the_source_bucket_owner() {
        let whole = mock!(Client::copy_object)
            .match_requests(|r| {
                r.expected_source_bucket_owner() == Some("111111111111")
                    && r.expected_bucket_owner() == Some("222222222222")
                    && r.copy_source_if_match() == Some("\"e\"")
                    && r.server_side_encryption() == Some(&ServerSideEncryption::AwsKms)
                    && r.ssekms_key_id() == Some("key")
            })
            .then_output(|| aws_sdk_s3::operation::copy_object::CopyObjectOutput::builder().build());
        let part = mock!(Client::upload_part_copy)
            .match_requests(|r| {
                r.expected_source_bucket_owner() == Some("111111111111")
                    && r.expected_bucket_owner() == Some("222222222222")
                    && r.copy_source_range() == Some("bytes=0-5242879")
                    && r.copy_source() == Some("dev-b/k")
            })
            .then_output(|| aws_sdk_s3::operation::upload_part_copy::UploadPartCopyOutput::builder().build());
        let store = {
            let client = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&whole, &part]);
            S3Artifacts::new(client, &"222222222222".parse().unwrap(), "key")
        };
        let destination: S3Uri = "s3://central-b/k".parse().unwrap();
        let owner: AccountId = "111111111111".parse().unwrap();
        let target = CopyTarget { destination: &destination, source_owner: &owner, source_etag: "\"e\"", content_type: None };
        let source: S3Uri = "s3://dev-b/k".parse().unwrap();

        store.copy_whole(&source, &target).await.expect("the copy request matches");
        let range = ByteRange { part_number: 1, first: 0, last: 5 * 1024 * 1024 - 1 };
        store.copy_part(&source, &target, "upload-1", range).await.expect("the part request matches");

        assert_eq!((whole.num_calls(), part.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn access_denied_is_terminal_and_asked_once() {
        let rule = mock!(Client::copy_object).sequence().http_status(403, Some("<Error><Code>AccessDenied</Code></Error>".into())).build();
        let destination: S3Uri = "s3://central-b/k".parse().unwrap();
        let owner: AccountId = "111111111111".parse().unwrap();
        let target = CopyTarget { destination: &destination, source_owner: &owner, source_etag: "\"e\"", content_type: None };

        let error = store(&[&rule]).copy_whole(&"s3://dev-b/k".parse().unwrap(), &target).await.unwrap_err();

        assert_eq!(error.kind, FailureKind::Terminal);
        assert_eq!(error.operation, "CopyObject");
        assert_eq!(rule.num_calls(), 1);
    }

    /// moto answers `If-None-Match: *` and keeps the object-lock headers, but echoes whatever
    /// checksum it is sent without checking it: the request itself is checked here.
    #[tokio::test]
    async fn a_report_is_written_only_where_nothing_is_with_its_sha256_and_locked_in_compliance_mode() {
        let body = b"{\"passed\": 2}".to_vec();
        let digest = sha256_base64(&body);
        let until = chrono::DateTime::parse_from_rfc3339("2033-01-01T00:00:00Z").unwrap().with_timezone(&chrono::Utc);
        let wanted = digest.clone();
        let rule = mock!(Client::put_object)
            .match_requests(move |r| {
                r.if_none_match() == Some("*")
                    && r.checksum_algorithm() == Some(&ChecksumAlgorithm::Sha256)
                    && r.checksum_sha256() == Some(wanted.as_str())
                    && r.object_lock_mode() == Some(&ObjectLockMode::Compliance)
                    && r.object_lock_retain_until_date() == Some(&S3DateTime::from_secs(until.timestamp()))
                    && r.expected_bucket_owner() == Some("222222222222")
                    && r.server_side_encryption() == Some(&ServerSideEncryption::Aes256)
                    && r.if_match().is_none()
                    && r.key() == Some("reports/g/1/test-j-attempt-1.json")
            })
            .then_output(move || {
                aws_sdk_s3::operation::put_object::PutObjectOutput::builder().version_id("v-1").checksum_sha256(sha256_base64(b"{\"passed\": 2}")).build()
            });
        let store = S3Artifacts::new(mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&rule]), &"222222222222".parse().unwrap(), "key");

        let stored = store.put_once(&"s3://evidence-b/reports/g/1/test-j-attempt-1.json".parse().unwrap(), body, "application/json", until).await.unwrap();

        assert_eq!(stored, StoredVersion { version_id: "v-1".into(), sha256: digest });
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_key_that_holds_a_report_or_is_being_written_is_a_conflict_asked_once() {
        for (status, code) in [(412, "PreconditionFailed"), (409, "ConditionalRequestConflict")] {
            let rule = mock!(Client::put_object).sequence().http_status(status, Some(format!("<Error><Code>{code}</Code></Error>"))).build();

            let error =
                store(&[&rule]).put_once(&"s3://evidence-b/k".parse().unwrap(), b"x".to_vec(), "application/json", chrono::Utc::now()).await.unwrap_err();

            assert_eq!((error.kind, error.operation), (FailureKind::Conflict, "PutObject"), "{code}: {error}");
            assert_eq!(rule.num_calls(), 1, "{code}");
        }
    }

    #[tokio::test]
    async fn a_version_is_read_by_its_id_and_a_key_hidden_by_a_delete_marker_has_no_current_version() {
        let get = mock!(Client::get_object)
            .match_requests(|r| r.version_id() == Some("v-1") && r.expected_bucket_owner() == Some("222222222222"))
            .then_output(|| aws_sdk_s3::operation::get_object::GetObjectOutput::builder().content_length(2).body(b"{}".to_vec().into()).build());
        let hidden = mock!(Client::head_object).sequence().http_status(404, None).build();
        let store = S3Artifacts::new(mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&get, &hidden]), &"222222222222".parse().unwrap(), "key");
        let uri: S3Uri = "s3://evidence-b/k".parse().unwrap();

        assert_eq!(store.read_version(&uri, "v-1", 10).await.unwrap(), b"{}");
        assert_eq!(store.current_version(&uri).await.unwrap(), None);
    }
}
