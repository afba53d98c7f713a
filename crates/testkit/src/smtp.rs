//! A real SMTP server for tests (built on `mailin-embedded`): it accepts every message, records the
//! envelope and the raw message, refuses `no-such-mailbox@…` recipients (550), and can be told to
//! answer the next DATA commands with a temporary failure (451), as a busy mail provider does.
//! [`SmtpSink::start_starttls`] adds STARTTLS with a self-signed certificate and AUTH (PLAIN and
//! LOGIN, one user); [`SmtpSink::start_implicit_tls`] puts a TLS front (as on port 465) before a
//! plain sink. Each writes the certificate the client must trust.

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
    /// (user, password) AUTH accepts.
    user: Option<(String, String)>,
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

    fn auth_plain(&mut self, _authz: &str, user: &str, password: &str) -> Response {
        match &self.user {
            Some((u, p)) if u == user && p == password => response::AUTH_OK,
            _ => response::INVALID_CREDENTIALS,
        }
    }

    fn auth_login(&mut self, user: &str, password: &str) -> Response {
        self.auth_plain("", user, password)
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
        Self::start_with(None, None)
    }

    fn start_with(tls: Option<&TlsFiles>, user: Option<(&str, &str)>) -> SmtpSink {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().unwrap();
        let state: Arc<Mutex<State>> = Arc::default();
        let sink = Sink {
            state: state.clone(),
            current: None,
            user: user.map(|(u, p)| (u.to_string(), p.to_string())),
        };
        let mut server = Server::new(sink);
        server
            .with_name("sink.test")
            .with_num_threads(16)
            .with_tcp_listener(listener);
        if let Some(t) = tls {
            server
                .with_ssl(mailin_embedded::SslConfig::SelfSigned {
                    cert_path: t.cert.display().to_string(),
                    key_path: t.key.display().to_string(),
                })
                .expect("TLS");
            server
                .with_auth(mailin_embedded::AuthMechanism::Plain)
                .with_auth(mailin_embedded::AuthMechanism::Login);
        }
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        SmtpSink { state, addr }
    }

    /// A sink offering STARTTLS (certificate for `localhost`) and requiring AUTH as `user`.
    /// Returns it with the PEM certificate to trust.
    pub fn start_starttls(user: &str, password: &str) -> (SmtpSink, TlsFiles) {
        let files = TlsFiles::new();
        (
            Self::start_with(Some(&files), Some((user, password))),
            files,
        )
    }

    /// A plain sink behind a TLS front on another port, as an implicit-TLS (465) server is.
    /// Returns the sink (whose `addr` is the TLS port) and the PEM certificate to trust.
    pub fn start_implicit_tls() -> (SmtpSink, TlsFiles) {
        use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod};
        let files = TlsFiles::new();
        let mut sink = Self::start();
        let backend = sink.addr;
        let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
        b.set_private_key_file(&files.key, SslFiletype::PEM)
            .unwrap();
        b.set_certificate_chain_file(&files.cert).unwrap();
        let acceptor = Arc::new(b.build());
        let front = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        sink.addr = front.local_addr().unwrap();
        std::thread::spawn(move || {
            for conn in front.incoming().map_while(Result::ok) {
                let acceptor = acceptor.clone();
                std::thread::spawn(move || {
                    let Ok(tls) = acceptor.accept(conn) else {
                        return;
                    };
                    let Ok(plain) = std::net::TcpStream::connect(backend) else {
                        return;
                    };
                    pump(tls, plain);
                });
            }
        });
        (sink, files)
    }
    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
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

/// Copy both ways between a TLS client and the plain backend until either side closes.
fn pump(mut tls: openssl::ssl::SslStream<std::net::TcpStream>, mut plain: std::net::TcpStream) {
    use std::io::{Read, Write};
    let _ = tls.get_ref().set_nodelay(true);
    let _ = plain.set_nodelay(true);
    let timeout = Some(std::time::Duration::from_millis(5));
    let _ = tls.get_ref().set_read_timeout(timeout);
    let _ = plain.set_read_timeout(timeout);
    let mut buf = [0u8; 16 * 1024];
    loop {
        match tls.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if plain.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
        match plain.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if tls.write_all(&buf[..n]).is_err() || tls.flush().is_err() {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

/// A self-signed certificate for `localhost` and its key, as PEM files in a temporary directory.
pub struct TlsFiles {
    _dir: tempfile::TempDir,
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

impl TlsFiles {
    fn new() -> TlsFiles {
        use openssl::asn1::Asn1Time;
        use openssl::bn::{BigNum, MsbOption};
        use openssl::hash::MessageDigest;
        use openssl::pkey::PKey;
        use openssl::rsa::Rsa;
        use openssl::x509::extension::{
            BasicConstraints, ExtendedKeyUsage, SubjectAlternativeName,
        };
        use openssl::x509::{X509NameBuilder, X509};
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "localhost").unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        let mut serial = BigNum::new().unwrap();
        serial.rand(64, MsbOption::MAYBE_ZERO, false).unwrap();
        b.set_serial_number(&serial.to_asn1_integer().unwrap())
            .unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(2).unwrap())
            .unwrap();
        b.append_extension(BasicConstraints::new().critical().build().unwrap())
            .unwrap();
        b.append_extension(ExtendedKeyUsage::new().server_auth().build().unwrap())
            .unwrap();
        let san = SubjectAlternativeName::new()
            .dns("localhost")
            .ip("127.0.0.1")
            .build(&b.x509v3_context(None, None))
            .unwrap();
        b.append_extension(san).unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key_path = dir.path().join("key.pem");
        std::fs::write(&cert, b.build().to_pem().unwrap()).unwrap();
        std::fs::write(&key_path, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        TlsFiles {
            _dir: dir,
            cert,
            key: key_path,
        }
    }
}
