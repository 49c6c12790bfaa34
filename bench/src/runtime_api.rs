//! A tiny Lambda Runtime API on loopback (hyper 1): hands one event to a function's binary and
//! records when the runtime first asks for work (end of init) and when it answers.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

#[derive(Debug, Default)]
pub struct Recorded {
    pub first_next: Option<Instant>,
    pub answered: Option<Instant>,
    /// `response` or `error` (or `init-error`).
    pub kind: Option<String>,
    pub body: Bytes,
}

pub struct RuntimeApi {
    /// `127.0.0.1:port`, for `AWS_LAMBDA_RUNTIME_API`.
    pub address: String,
    state: Arc<State>,
    answered: watch::Receiver<bool>,
    server: JoinHandle<()>,
}

struct State {
    event: Bytes,
    function_arn: String,
    deadline_ms: u64,
    recorded: Mutex<Recorded>,
    /// Whether the one event was handed out.
    served: AtomicBool,
    answered: watch::Sender<bool>,
}

impl RuntimeApi {
    /// Serves `event` once (request id `bench-1`, a deadline `deadline_ms` from when it is handed out).
    pub async fn serve(event: Vec<u8>, function_arn: String, deadline_ms: u64) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?.to_string();
        let (answered, receiver) = watch::channel(false);
        let state = Arc::new(State {
            event: event.into(),
            function_arn,
            deadline_ms,
            recorded: Mutex::new(Recorded::default()),
            served: AtomicBool::new(false),
            answered,
        });
        let shared = state.clone();
        let server = tokio::spawn(async move {
            // Dropped with the server task: every connection ends with it.
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                let service = service_fn(move |request| answer(state.clone(), request));
                connections.spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        Ok(Self { address, state, answered: receiver, server })
    }

    /// Waits until the function answered, or `timeout`.
    pub async fn wait_answer(&self, timeout: Duration) -> bool {
        let mut answered = self.answered.clone();
        let answer = tokio::time::timeout(timeout, answered.wait_for(|a| *a)).await;
        matches!(answer, Ok(Ok(_)))
    }

    pub fn recorded(&self) -> Recorded {
        std::mem::take(&mut *self.state.recorded.lock().expect("recorded"))
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn answer(state: Arc<State>, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let path = request.uri().path().to_owned();
    if request.method() == Method::GET && path.ends_with("/invocation/next") {
        state.recorded.lock().expect("recorded").first_next.get_or_insert_with(Instant::now);
        if state.served.swap(true, Ordering::SeqCst) {
            // The real API long-polls until the next invocation; there is none.
            std::future::pending::<Infallible>().await;
        }
        let deadline = chrono::Utc::now().timestamp_millis() as u64 + state.deadline_ms;
        let response = Response::builder()
            .header("content-type", "application/json")
            .header("lambda-runtime-aws-request-id", "bench-1")
            .header("lambda-runtime-deadline-ms", deadline.to_string())
            .header("lambda-runtime-invoked-function-arn", state.function_arn.as_str())
            .header("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000")
            .body(Full::new(state.event.clone()));
        return Ok(response.expect("valid response"));
    }
    let body = request.into_body().collect().await?.to_bytes();
    let kind = if path.ends_with("/response") {
        "response"
    } else if path.ends_with("/init/error") {
        "init-error"
    } else {
        "error"
    };
    {
        let mut recorded = state.recorded.lock().expect("recorded");
        if recorded.answered.is_none() {
            *recorded = Recorded { answered: Some(Instant::now()), kind: Some(kind.to_owned()), body, ..std::mem::take(&mut *recorded) };
        }
    }
    state.answered.send_replace(true);
    let response = Response::builder()
        .status(StatusCode::ACCEPTED)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(b"{\"status\":\"OK\"}\n")));
    Ok(response.expect("valid response"))
}
