//! An S3 server for the tests: moto's server (PyPI `moto[server]`) on a free port, and a
//! TCP relay in front of it that can be cut to simulate an outage of the object store
//! without losing moto's in-memory buckets.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{eventually, free_addr, http_client, require};

pub const INSTALL: &str = "pip install 'moto[server]'  (or run .ci/run)";

/// A moto S3 server on 127.0.0.1, killed when dropped.
pub struct Moto {
    child: Child,
    pub port: u16,
    log: tempfile::NamedTempFile,
}

impl Moto {
    pub fn available() -> bool {
        Command::new("python3")
            .args(["-c", "import moto.server, flask, flask_cors, boto3"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Starts moto, or returns `None` after printing why (panics under `CI=true`).
    pub fn start() -> Option<Self> {
        if !require(
            Self::available(),
            "moto's S3 server (python3 -m moto.server)",
            INSTALL,
        ) {
            return None;
        }
        let port = free_addr().port();
        let log = tempfile::NamedTempFile::new().expect("moto log");
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.reopen().expect("log")))
            .stderr(Stdio::from(log.reopen().expect("log")))
            .spawn()
            .expect("spawn python3 -m moto.server");
        let mut m = Self { child, port, log };
        let client = http_client();
        let url = m.url("/");
        eventually(Duration::from_secs(60), "moto to answer", || {
            if let Ok(Some(st)) = m.child.try_wait() {
                panic!(
                    "moto exited: {st}\n{}",
                    std::fs::read_to_string(m.log.path()).unwrap_or_default()
                );
            }
            client.get(&url).send().ok().map(|_| ())
        });
        Some(m)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn endpoint(&self) -> String {
        self.url("")
    }

    /// Creates a bucket (moto checks no signature).
    pub fn create_bucket(&self, bucket: &str) {
        let r = http_client()
            .put(self.url(&format!("/{bucket}")))
            .send()
            .expect("PUT bucket");
        assert!(r.status().is_success(), "create bucket: {}", r.status());
    }

    /// Every key of `bucket`.
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut url = format!("/{bucket}?list-type=2");
            if let Some(t) = &token {
                url.push_str("&continuation-token=");
                url.push_str(
                    &t.replace('+', "%2B")
                        .replace('/', "%2F")
                        .replace('=', "%3D"),
                );
            }
            let body = http_client()
                .get(self.url(&url))
                .send()
                .expect("list objects")
                .text()
                .expect("list body");
            keys.extend(xml_values(&body, "Key"));
            token = xml_values(&body, "NextContinuationToken")
                .into_iter()
                .next();
            if token.is_none() {
                return keys;
            }
        }
    }

    /// An object's bytes, read with boto3 (installed with moto): moto refuses unsigned
    /// reads of objects written with credentials.
    pub fn get(&self, bucket: &str, key: &str) -> Vec<u8> {
        let script = "import sys, boto3\n\
            s3 = boto3.client('s3', endpoint_url=sys.argv[1], aws_access_key_id='test',\n\
                aws_secret_access_key='test', region_name='us-east-1')\n\
            sys.stdout.buffer.write(s3.get_object(Bucket=sys.argv[2], Key=sys.argv[3])['Body'].read())\n";
        let out = Command::new("python3")
            .args(["-c", script, &self.endpoint(), bucket, key])
            .output()
            .expect("run python3 boto3");
        assert!(
            out.status.success(),
            "boto3 get {bucket}/{key}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.split(&open)
        .skip(1)
        .filter_map(|s| s.split_once(&close).map(|(v, _)| v.to_string()))
        .collect()
}

/// A TCP relay from a port of its own to `upstream` (moto), that can be cut: while cut its
/// port refuses connections and the connections it relayed are reset, as when the object
/// store is down; restored, it listens on the same port again.
pub struct Relay {
    port: u16,
    up: Arc<AtomicBool>,
    listening: Arc<AtomicBool>,
    quit: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    /// Relays a free port of 127.0.0.1 to `127.0.0.1:upstream`.
    pub fn start(upstream: u16) -> Self {
        let port = free_addr().port();
        let up = Arc::new(AtomicBool::new(true));
        let listening = Arc::new(AtomicBool::new(false));
        let quit = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let thread = {
            let (up, listening, quit, conns) = (
                Arc::clone(&up),
                Arc::clone(&listening),
                Arc::clone(&quit),
                Arc::clone(&conns),
            );
            std::thread::spawn(move || {
                let mut listener: Option<TcpListener> = None;
                while !quit.load(Ordering::SeqCst) {
                    if !up.load(Ordering::SeqCst) {
                        listener = None;
                        listening.store(false, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                    if listener.is_none() {
                        match TcpListener::bind(("127.0.0.1", port)) {
                            Ok(l) => {
                                l.set_nonblocking(true).expect("nonblocking listener");
                                listener = Some(l);
                                listening.store(true, Ordering::SeqCst);
                            }
                            Err(_) => {
                                std::thread::sleep(Duration::from_millis(20));
                                continue;
                            }
                        }
                    }
                    match listener.as_ref().expect("bound above").accept() {
                        Ok((client, _)) => {
                            let _ = client.set_nonblocking(false);
                            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                                continue;
                            };
                            for s in [&client, &server] {
                                if let Ok(c) = s.try_clone() {
                                    conns.lock().unwrap().push(c);
                                }
                            }
                            pipe(&client, &server);
                            pipe(&server, &client);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        let r = Self {
            port,
            up,
            listening,
            quit,
            conns,
            thread: Some(thread),
        };
        r.wait_listening(true);
        r
    }

    /// `http://127.0.0.1:<port>`, the endpoint to give the server under test.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Cuts the relay: new connections are refused and open ones reset.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.wait_listening(false);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    /// Listens again on the same port.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
        self.wait_listening(true);
    }

    fn wait_listening(&self, want: bool) {
        eventually(Duration::from_secs(10), "the relay to change state", || {
            (self.listening.load(Ordering::SeqCst) == want).then_some(())
        });
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.quit.store(true, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Copies `from` to `to` on a thread of its own until either side closes.
fn pipe(from: &TcpStream, to: &TcpStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let mut buf = [0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}
