//! A real SMTP server for tests (built on `mailin-embedded`): it accepts every message, records the
//! envelope and the raw message, refuses `no-such-mailbox@…` recipients (550), and can be told to
//! answer the next DATA commands with a temporary failure (451), as a busy mail provider does.
//! No AUTH: mailin offers it only over TLS.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use mailin_embedded::{response, Handler, Response, Server};

/// One message as the server received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: Vec<u8>,
}

impl Received {
    /// The raw message as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    fail_next: u32,
    /// Count messages without keeping them (benchmarks).
    discard: bool,
    counted: usize,
}

#[derive(Clone)]
struct Sink {
    state: Arc<Mutex<State>>,
    current: Option<Received>,
}

impl Handler for Sink {
    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        let mut s = self.state.lock().unwrap();
        if s.fail_next > 0 {
            s.fail_next -= 1;
            self.current = None;
            return response::INTERNAL_ERROR;
        }
        self.current = Some(Received {
            from: from.to_string(),
            to: to.to_vec(),
            data: Vec::new(),
        });
        response::OK
    }

    fn rcpt(&mut self, to: &str) -> Response {
        // A mailbox that does not exist, for permanent-failure tests.
        if to.starts_with("no-such-mailbox@") {
            return response::NO_MAILBOX;
        }
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if let Some(c) = &mut self.current {
            c.data.extend_from_slice(buf);
        }
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let mut s = self.state.lock().unwrap();
        if let Some(c) = self.current.take() {
            s.counted += 1;
            if !s.discard {
                s.received.push(c);
            }
        }
        response::OK
    }
}

/// The running server.
#[derive(Clone)]
pub struct SmtpSink {
    state: Arc<Mutex<State>>,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl SmtpSink {
    /// Start on a random loopback port.
    pub fn start() -> SmtpSink {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().unwrap();
        let state: Arc<Mutex<State>> = Arc::default();
        let sink = Sink {
            state: state.clone(),
            current: None,
        };
        let mut server = Server::new(sink);
        server
            .with_name("sink.test")
            .with_num_threads(16)
            .with_tcp_listener(listener);
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        SmtpSink { state, addr }
    }

    /// `smtp://127.0.0.1:PORT` for `mail.smtp_url` (plain SMTP on loopback).
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Messages received so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// How many messages arrived so far (cheap: nothing is copied).
    pub fn count(&self) -> usize {
        self.state.lock().unwrap().counted
    }

    /// Keep counting messages but stop keeping them (a benchmark's memory stays flat).
    pub fn discard_messages(&self) {
        self.state.lock().unwrap().discard = true;
    }

    /// Answer the next `n` DATA commands with 451 (a temporary failure).
    pub fn fail_next(&self, n: u32) {
        self.state.lock().unwrap().fail_next = n;
    }

    /// Wait (up to 15 s) for at least `n` messages.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        for _ in 0..300 {
            if self.count() >= n {
                return self.received();
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!(
            "the SMTP sink got {} messages, expected {n}",
            self.received().len()
        );
    }
}
