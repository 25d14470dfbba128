//! Hostile and broken surroundings, end to end through the real binary: slow clients and
//! too many connections, blocks whose `meta.json` is foreign or broken, tokens files that
//! break while the server runs.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

/// Reads from `s` until the peer closes it (or resets it); everything read. Panics if that
/// has not happened after `within` (far longer than the server's timeouts).
#[track_caller]
fn read_until_closed(s: &mut TcpStream, within: Duration) -> String {
    let deadline = Instant::now() + within;
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                assert!(
                    Instant::now() < deadline,
                    "the server kept the connection open; read so far: {}",
                    String::from_utf8_lossy(&out)
                );
            }
            // A reset is a close too.
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Sends a GET of `path` on `s` (keep-alive) and reads one response with a short body.
fn get_on(s: &mut TcpStream, path: &str) -> String {
    write!(s, "GET {path} HTTP/1.1\r\nHost: hypnos\r\n\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).expect("a response");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn slow_clients_are_disconnected() {
    let s = TestServer::with(
        Options::default()
            .arg("--http.header-read-timeout=1s")
            .arg("--http.body-read-timeout=2s"),
    );
    // Half a header, then nothing.
    let mut half = TcpStream::connect(s.http_addr()).unwrap();
    half.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: h")
        .unwrap();
    // Nothing at all.
    let mut silent = TcpStream::connect(s.http_addr()).unwrap();
    // A whole header and half of the body it announces.
    let mut stalled = TcpStream::connect(s.http_addr()).unwrap();
    write!(
        stalled,
        "POST /api/v1/receive HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-protobuf\r\n\
         Content-Encoding: snappy\r\nContent-Length: 1000\r\n\r\n"
    )
    .unwrap();
    stalled.write_all(&[0u8; 100]).unwrap();

    assert_eq!(read_until_closed(&mut half, Duration::from_secs(60)), "");
    assert_eq!(read_until_closed(&mut silent, Duration::from_secs(60)), "");
    let answer = read_until_closed(&mut stalled, Duration::from_secs(60));
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("request body not received within 2s"),
        "{answer}"
    );
    // The server is fine and counted the request.
    assert_eq!(s.get("/-/healthy").0, 200);
    let m = s.metrics();
    assert_eq!(
        metric_value(&m, "hypnos_http_requests_total", &[("code", "408")]),
        Some(1.0),
        "{m}"
    );
    // A keep-alive connection is not cut while it is used.
    let mut used = TcpStream::connect(s.http_addr()).unwrap();
    assert!(get_on(&mut used, "/-/healthy").starts_with("HTTP/1.1 200"));
    assert!(get_on(&mut used, "/-/ready").starts_with("HTTP/1.1 200"));
}

#[test]
fn connections_past_the_cap_wait_and_open_ones_are_served() {
    let s = TestServer::with(
        Options::default()
            .arg("--http.max-connections=2")
            .arg("--http.header-read-timeout=10m"),
    );
    // A health checker's keep-alive connection, then idle connections until the cap is
    // reached (the test client's own pooled connection may hold a slot too).
    let mut checker = TcpStream::connect(s.http_addr()).unwrap();
    assert!(get_on(&mut checker, "/-/healthy").starts_with("HTTP/1.1 200"));
    let full = || s.log().contains("HTTP connection limit reached");
    let mut idle = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !full() {
        assert!(idle.len() < 2, "the cap of 2 was never reached");
        idle.push(TcpStream::connect(s.http_addr()).unwrap());
        let wait = Instant::now() + Duration::from_secs(5);
        while !full() && Instant::now() < wait {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(Instant::now() < deadline);
    }
    // A new connection is not served while the cap is reached...
    let mut third = TcpStream::connect(s.http_addr()).unwrap();
    write!(third, "GET /-/healthy HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut buf = [0u8; 1024];
    let e = third.read(&mut buf).expect_err("answered past the cap");
    assert!(
        matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{e}"
    );
    // ...while the health checker's open connection still is...
    assert!(get_on(&mut checker, "/-/healthy").starts_with("HTTP/1.1 200"));
    // ...and it is served as soon as one closes.
    drop(checker);
    third
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let n = third.read(&mut buf).expect("answered once a slot is free");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    drop(idle);
}

#[test]
fn blocks_with_a_foreign_or_broken_meta_are_skipped() {
    let mut s = TestServer::start();
    let t = now_ms() - 60_000;
    s.write(
        Tenant::Thanos("good"),
        &request(vec![series("up", &[("job", "a")], &[(t, 1.0)])]),
    );
    s.flush();
    s.terminate();
    let good_dir = s.bucket_dir().join("tenants/good");
    let block = std::fs::read_dir(&good_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let meta = std::fs::read_to_string(block.join("meta.json")).unwrap();
    // Another tenant's folder holding a meta that names `good`; a folder of `good` whose
    // meta is not JSON.
    let foreign = s
        .bucket_dir()
        .join("tenants/evil/01ARZ3NDEKTSV4RRFFQ69G5FAV");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("meta.json"), &meta).unwrap();
    let broken = good_dir.join("01BX5ZZKBKACTAV9WEVGEMMVRZ");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("meta.json"), "{\"ulid\": ").unwrap();
    s.restart();

    let v = s.query(Tenant::Thanos("good"), "up", t);
    assert_eq!(v["result"].as_array().unwrap().len(), 1, "{v}");
    let v = s.query(Tenant::Thanos("good"), "count_over_time(up[10m])", t);
    assert_eq!(
        v["result"][0]["value"][1], "1",
        "the block is read once: {v}"
    );
    let v = s.query(Tenant::Thanos("evil"), "up", t);
    assert_eq!(v["result"], serde_json::json!([]), "{v}");
    let m = s.metrics();
    for (reason, n) in [("tenant_mismatch", 1.0), ("invalid_meta", 1.0)] {
        assert_eq!(
            metric_value(&m, "hypnos_catalog_blocks_skipped", &[("reason", reason)]),
            Some(n),
            "{m}"
        );
    }
    assert!(!m.contains("tenant=\"evil\""), "{m}");
    let log = s.log();
    assert!(
        log.contains("block skipped") && log.contains("01BX5ZZKBKACTAV9WEVGEMMVRZ"),
        "{log}"
    );
}

const TOKENS: &str = r#"
tokens:
  - name: writer
    token: tok-writer-0123456789
    write: [alpha]
  - name: scraper
    token: tok-scrape-0123456789
    metrics: true
"#;

#[test]
fn a_broken_tokens_file_keeps_the_old_tokens_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.yml");
    std::fs::write(&file, TOKENS).unwrap();
    let s = TestServer::with(
        Options::default()
            .arg("--auth=token")
            .arg(format!("--auth.tokens-file={}", file.display())),
    );
    let label = file.display().to_string();
    let reload_ok = |m: &str| {
        metric_value(
            m,
            "hypnos_config_last_reload_successful",
            &[("file", label.as_str())],
        )
    };
    let m = s.metrics_with_token("tok-scrape-0123456789");
    assert_eq!(reload_ok(&m), Some(1.0), "{m}");
    let loaded = metric_value(
        &m,
        "hypnos_config_last_reload_success_timestamp_seconds",
        &[("file", label.as_str())],
    )
    .unwrap();
    assert!(loaded > 1.6e9, "{loaded}");
    // A write to a tenant the token may not use counts under a placeholder, not the name.
    let body = encode(&request(vec![series("up", &[], &[(now_ms(), 1.0)])]));
    let r = s
        .client()
        .post(s.url("/api/v1/receive"))
        .bearer_auth("tok-writer-0123456789")
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("THANOS-TENANT", "made-up-tenant-42")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // Broken, then deleted: the tokens in use stay, the metric turns 0.
    for broken in [true, false] {
        if broken {
            std::fs::write(&file, "tokens: [").unwrap();
        } else {
            std::fs::remove_file(&file).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let m = s.metrics_with_token("tok-scrape-0123456789");
            if reload_ok(&m) == Some(0.0) {
                assert!(!m.contains("made-up-tenant-42"), "{m}");
                assert_eq!(
                    metric_value(
                        &m,
                        "hypnos_receive_rejected_total",
                        &[("tenant", "<other>"), ("reason", "forbidden")]
                    ),
                    Some(1.0),
                    "{m}"
                );
                break;
            }
            assert!(Instant::now() < deadline, "never reported: {m}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // Back: 1 again.
    std::fs::write(&file, TOKENS).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while reload_ok(&s.metrics_with_token("tok-scrape-0123456789")) != Some(1.0) {
        assert!(Instant::now() < deadline, "never back to 1");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Opens a remote write announcing `len` bytes of body and sends `sent` of them.
fn announce_write(s: &TestServer, len: usize, sent: usize) -> TcpStream {
    let mut c = TcpStream::connect(s.http_addr()).unwrap();
    write!(
        c,
        "POST /api/v1/write HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-protobuf\r\n\
         Content-Encoding: snappy\r\nContent-Length: {len}\r\n\r\n"
    )
    .unwrap();
    c.write_all(&vec![0u8; sent]).unwrap();
    c
}

/// The answer to a request sent on `c` before its body (the whole answer, up to the close,
/// as the server closes a connection whose body it did not read), or `None` when nothing
/// came within `wait`.
fn early_answer(c: &mut TcpStream, wait: Duration) -> Option<String> {
    c.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 4096];
    let n = c.read(&mut buf).ok().filter(|&n| n > 0)?;
    let mut out = buf[..n].to_vec();
    out.extend(read_until_closed(c, Duration::from_secs(30)).into_bytes());
    Some(String::from_utf8_lossy(&out).into_owned())
}

#[test]
fn request_bodies_being_received_count_against_the_decoding_budget() {
    const FLAG: &str = "--receive.max-inflight-decode-bytes";
    let s = TestServer::with(
        Options::default()
            .arg(format!("{FLAG}=1048576"))
            .arg("--http.body-read-timeout=10m"),
    );
    // A body larger than the whole budget (yet under the request size limit) is refused
    // before it is read, 413 naming the flag.
    let mut big = announce_write(&s, 2 << 20, 0);
    let answer = early_answer(&mut big, Duration::from_secs(30)).expect("an answer");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains(FLAG), "{answer}");
    // A request that announces 900 kB and sends a little of it, held open.
    let held = announce_write(&s, 900_000, 1000);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let m = s.metrics();
        let used = metric_value(&m, "hypnos_receive_inflight_decode_bytes", &[]);
        if used == Some(900_000.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the held body is not reserved: {m}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Another of 300 kB does not fit next to it: 429 with Retry-After, naming the flag,
    // before its body is sent.
    let mut c = announce_write(&s, 300_000, 0);
    let answer = early_answer(&mut c, Duration::from_secs(60)).expect("an answer");
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.contains(FLAG), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );
    // Once the held request is gone, its bytes are given back: a valid write is accepted.
    drop(held);
    let t = now_ms();
    let body = encode(&request(vec![series("up", &[], &[(t, 1.0)])]));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = s
            .client()
            .post(s.url("/api/v1/write"))
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .body(body.clone())
            .send()
            .unwrap();
        let status = r.status().as_u16();
        if status == 204 {
            break;
        }
        assert_eq!(status, 429, "{}", r.text().unwrap());
        assert!(Instant::now() < deadline, "the budget was never given back");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Nothing stays reserved once the requests are done.
    while metric_value(&s.metrics(), "hypnos_receive_inflight_decode_bytes", &[]) != Some(0.0) {
        assert!(Instant::now() < deadline, "bytes stay reserved");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn clients_that_never_read_their_responses_are_disconnected() {
    let s = TestServer::with(
        Options::default()
            .arg("--http.max-connections=2")
            .arg("--http.write-timeout=2s"),
    );
    // About 2 MB of series labels: each /api/v1/series answer is that large.
    let t = now_ms();
    let pad = "p".repeat(1000);
    for batch in 0..4 {
        let series: Vec<_> = (0..500)
            .map(|i| {
                let id = format!("{batch}-{i}");
                common::series("big", &[("id", &id), ("pad", &pad)], &[(t, 1.0)])
            })
            .collect();
        s.write(Tenant::Default, &request(series));
    }
    // Two clients fill the cap: each asks for the series 20 times (40 MB, far more than
    // the socket buffers hold) and reads nothing.
    let hogs: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut c = TcpStream::connect(s.http_addr()).unwrap();
            let get = "GET /api/v1/series?match%5B%5D=big HTTP/1.1\r\nHost: h\r\n\r\n";
            c.write_all(get.repeat(20).as_bytes()).unwrap();
            c
        })
        .collect();
    // A new client is served once the write timeout has closed them.
    let mut fresh = TcpStream::connect(s.http_addr()).unwrap();
    write!(fresh, "GET /-/healthy HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    fresh
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = fresh
        .read(&mut buf)
        .expect("a new client is served once the non-reading ones are closed");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
    // The hogs were disconnected: what they did not read ends with the close.
    for mut h in hogs {
        let got = read_until_closed(&mut h, Duration::from_secs(60));
        assert!(
            got.starts_with("HTTP/1.1 200"),
            "{}",
            &got[..got.len().min(200)]
        );
    }
    assert_eq!(s.get("/-/healthy").0, 200);
}

#[test]
fn grpc_connections_that_never_start_http2_are_closed() {
    let s = TestServer::with(
        Options::default()
            .arg("--http.max-connections=2")
            .arg("--http.header-read-timeout=1s"),
    );
    // Two connections that send nothing hold the gRPC cap...
    let mut silent: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(s.grpc_addr()).unwrap())
        .collect();
    // ...until the timeout closes them, and a third client that starts HTTP/2 (preface
    // and an empty SETTINGS frame) gets the server's SETTINGS.
    let mut client = TcpStream::connect(s.grpc_addr()).unwrap();
    client
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut head = [0u8; 9];
    client
        .read_exact(&mut head)
        .expect("the server answers once the silent connections are closed");
    assert_eq!(head[3], 0x04, "a SETTINGS frame: {head:?}");
    // They were closed (after the server's own SETTINGS, which it sends first).
    for c in &mut silent {
        read_until_closed(c, Duration::from_secs(60));
    }
}
