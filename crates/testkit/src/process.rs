//! The real `yiren` binary as a child process.

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::yiren_bin;

/// `yiren --data-dir DIR` with quiet logs.
pub fn yiren(dir: &Path) -> Command {
    let mut c = Command::new(yiren_bin());
    c.arg("--data-dir")
        .arg(dir)
        .env_remove("RUST_LOG")
        .env("YIREN_LOG__LEVEL", "warn");
    c
}

/// A running `yiren serve`, killed when dropped.
pub struct Server {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The setup URL it printed on stdout, if any.
    pub setup_url: Option<String>,
}

fn forward_lines(r: impl std::io::Read + Send + 'static, tx: mpsc::Sender<String>) {
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
}

impl Server {
    /// Start on a random port; `db_url` empty = the data directory's SQLite file.
    pub fn start(dir: &Path, db_url: &str, extra_env: &[(&str, &str)]) -> Server {
        let mut cmd = yiren(dir);
        cmd.args(["serve", "--addr", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("YIREN_LOG__LEVEL", "info");
        if !db_url.is_empty() {
            cmd.args(["--database-url", db_url]);
        }
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start yiren");
        let (tx, rx) = mpsc::channel();
        forward_lines(child.stderr.take().unwrap(), tx.clone());
        forward_lines(child.stdout.take().unwrap(), tx);
        let deadline = Instant::now() + Duration::from_secs(30);
        let (mut base, mut setup_url) = (None, None);
        // The listening line comes first (stderr); the setup link follows it (stdout) when pending.
        while Instant::now() < deadline {
            let Ok(line) = rx.recv_timeout(Duration::from_millis(300)) else {
                if base.is_some() {
                    break;
                }
                continue;
            };
            if let Some(i) = line.find("listening on http://") {
                base = Some(format!(
                    "http://{}",
                    line[i + "listening on http://".len()..]
                        .split_whitespace()
                        .next()
                        .unwrap()
                ));
            }
            if let Some(i) = line.find("http://") {
                if line[i..].contains("/setup/") && setup_url.is_none() {
                    setup_url = Some(
                        line[i..]
                            .split_whitespace()
                            .next()
                            .unwrap()
                            .trim_end_matches(['。', '.'])
                            .to_string(),
                    );
                }
            }
            if base.is_some() && setup_url.is_some() {
                break;
            }
        }
        // Keep draining so the child never blocks on a full pipe.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        Server {
            child,
            base: base.expect("server started"),
            setup_url,
        }
    }

    /// Send a signal.
    pub fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Wait for exit, at most `limit`.
    pub fn wait(mut self, limit: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(start.elapsed() < limit, "did not exit in time");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
