//! An HTTP client for the AWS SDK that counts every request it sends (retries included) and
//! names its AWS operation.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_smithy_http_client::tls;
use aws_smithy_runtime_api::client::http::{HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;

#[derive(Debug, Clone, Default)]
pub struct RequestLog(Arc<Mutex<Vec<String>>>);

impl RequestLog {
    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
    pub fn by_operation(requests: &[String]) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for request in requests {
            *counts.entry(request.clone()).or_insert(0) += 1;
        }
        counts
    }
}

#[derive(Debug, Clone)]
pub struct CountingClient {
    inner: SharedHttpClient,
    log: RequestLog,
}

impl CountingClient {
    pub fn new(log: RequestLog) -> Self {
        let inner = aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring)).build_https();
        Self { inner, log }
    }
}

impl HttpClient for CountingClient {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(CountingConnector { inner: self.inner.http_connector(settings, components), log: self.log.clone() })
    }
}

#[derive(Debug)]
struct CountingConnector {
    inner: SharedHttpConnector,
    log: RequestLog,
}

impl HttpConnector for CountingConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        self.log.0.lock().unwrap().push(operation(&request));
        self.inner.call(request)
    }
}

/// `SageMaker.DescribeModelPackage`, `DynamoDB.PutItem`, `S3.UploadPartCopy`, `STS`…
fn operation(request: &HttpRequest) -> String {
    let headers = request.headers();
    if let Some(target) = headers.get("x-amz-target") {
        let (service, op) = target.split_once('.').unwrap_or(("?", target));
        let service = service.split('_').next().unwrap_or(service);
        return format!("{service}.{op}");
    }
    if headers.get("content-type").is_some_and(|c| c.starts_with("application/x-www-form-urlencoded")) {
        return "STS.AssumeRole".into();
    }
    let uri = request.uri();
    let query = uri.split_once('?').map(|(_, q)| q).unwrap_or("");
    let has = |key: &str| query.split('&').any(|p| p == key || p.starts_with(&format!("{key}=")));
    let copy = headers.get("x-amz-copy-source").is_some();
    let op = match request.method() {
        "HEAD" => "HeadObject",
        "GET" if has("uploads") => "ListMultipartUploads",
        "GET" if has("list-type") => "ListObjectsV2",
        "GET" => "GetObject",
        "PUT" if copy && has("partNumber") => "UploadPartCopy",
        "PUT" if copy => "CopyObject",
        "PUT" if has("partNumber") => "UploadPart",
        "PUT" => "PutObject",
        "POST" if has("uploads") => "CreateMultipartUpload",
        "POST" if has("uploadId") => "CompleteMultipartUpload",
        "DELETE" if has("uploadId") => "AbortMultipartUpload",
        "DELETE" => "DeleteObject",
        other => other,
    };
    format!("S3.{op}")
}
