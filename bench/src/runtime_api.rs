//! A tiny Lambda Runtime API on loopback: hands one event to a function's binary and records
//! when the runtime first asks for work (end of init) and when it answers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub struct Recorded {
    pub first_next: Option<Instant>,
    pub answered: Option<Instant>,
    /// `response` or `error` (or `init-error`).
    pub kind: Option<String>,
    pub body: Vec<u8>,
}

pub struct RuntimeApi {
    pub address: String,
    state: Arc<(Mutex<(Recorded, bool)>, Condvar)>,
    stop: Arc<AtomicBool>,
}

impl RuntimeApi {
    /// Serves `event` once (request id `bench-1`, a deadline `deadline_ms` from now).
    pub fn serve(event: Vec<u8>, function_arn: String, deadline_ms: u64) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let address = listener.local_addr()?.to_string();
        let state = Arc::new((Mutex::new((Recorded::default(), false)), Condvar::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (state2, stop2) = (state.clone(), stop.clone());
        let event = Arc::new(event);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (state, stop, event, arn) = (state2.clone(), stop2.clone(), event.clone(), function_arn.clone());
                std::thread::spawn(move || connection(stream, &state, &stop, &event, &arn, deadline_ms));
            }
        });
        Ok(Self { address, state, stop })
    }

    /// Waits until the function answered, or `timeout`.
    pub fn wait_answer(&self, timeout: Duration) -> bool {
        let (lock, ready) = &*self.state;
        let guard = lock.lock().unwrap();
        let (guard, _) = ready.wait_timeout_while(guard, timeout, |(r, _)| r.answered.is_none()).unwrap();
        guard.0.answered.is_some()
    }

    pub fn recorded(&self) -> Recorded {
        let (lock, _) = &*self.state;
        let mut guard = lock.lock().unwrap();
        std::mem::take(&mut guard.0)
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.address);
    }
}

fn connection(stream: TcpStream, state: &(Mutex<(Recorded, bool)>, Condvar), stop: &AtomicBool, event: &[u8], arn: &str, deadline_ms: u64) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or("").to_owned(), parts.next().unwrap_or("").to_owned());
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let (lock, ready) = state;
        if method == "GET" && path.ends_with("/invocation/next") {
            let first = {
                let mut guard = lock.lock().unwrap();
                guard.0.first_next.get_or_insert_with(Instant::now);
                !std::mem::replace(&mut guard.1, true)
            };
            if !first {
                // The real API long-polls until the next invocation; there is none.
                while !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                return;
            }
            let deadline = chrono::Utc::now().timestamp_millis() as u64 + deadline_ms;
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: bench-1\r\nLambda-Runtime-Deadline-Ms: {deadline}\r\nLambda-Runtime-Invoked-Function-Arn: {arn}\r\nLambda-Runtime-Trace-Id: Root=1-00000000-000000000000000000000000\r\nContent-Length: {}\r\n\r\n",
                event.len()
            );
            if writer.write_all(head.as_bytes()).and_then(|_| writer.write_all(event)).is_err() {
                return;
            }
        } else {
            let kind = if path.ends_with("/response") {
                "response"
            } else if path.ends_with("/init/error") {
                "init-error"
            } else {
                "error"
            };
            {
                let mut guard = lock.lock().unwrap();
                if guard.0.answered.is_none() {
                    guard.0.answered = Some(Instant::now());
                    guard.0.kind = Some(kind.to_owned());
                    guard.0.body = body;
                }
                ready.notify_all();
            }
            let reply = "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"status\":\"OK\"}\n";
            if writer.write_all(reply.as_bytes()).is_err() {
                return;
            }
        }
    }
}
