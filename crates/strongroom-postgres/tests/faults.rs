//! Faults against real servers: a server that is down, one that never answers, backends
//! terminated mid-session, a restart, and connections lost before and during `COMMIT`
//! (through a proxy that cuts the connection at the client's `COMMIT`).
//!
//! Each test that disturbs a server has a server of its own.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use strongroom_postgres::test_server::TestServer;
use strongroom_postgres::{PostgresOptions, PostgresStore};
use strongroom_store::{Batch, Expect, ReadView, Store, StoreError, Table};

fn options(pool_size: usize) -> PostgresOptions {
    PostgresOptions::default()
        .with_schema(Some(format!("faults_{}", std::process::id())))
        .with_pool_size(pool_size)
}

/// A port on 127.0.0.1 with nothing listening.
fn dead_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn put(store: &dyn Store, key: &str, expect: Expect) -> Result<u64, StoreError> {
    let mut b = Batch::new();
    b.put(Table::Meta, key, key, expect);
    Ok(store.commit(&b)?.versions[0])
}

#[test]
fn a_server_that_is_down_fails_at_once_naming_host_and_cause() {
    let port = dead_port();
    let t = Instant::now();
    let e = PostgresStore::connect(
        &format!("host=127.0.0.1 port={port} user=postgres sslmode=disable"),
        options(1),
    )
    .unwrap_err();
    let took = t.elapsed();
    eprintln!("connect to a closed port failed after {took:?}: {e}");
    let msg = e.to_string();
    assert!(e.is_retryable(), "{e:?}");
    assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
    assert!(msg.contains("connection refused"), "{msg}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

/// A listener that accepts TCP connections (the kernel does, into its backlog) and never
/// says a word: the whole set-up, not only the TCP handshake, is bounded.
#[test]
fn a_server_that_never_answers_fails_within_the_connect_timeout() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    for (setting, expected) in [("connect_timeout=2", 2), ("", 5)] {
        let t = Instant::now();
        let e = PostgresStore::connect(
            &format!("host=127.0.0.1 port={port} user=postgres sslmode=disable {setting}"),
            options(1),
        )
        .unwrap_err();
        let took = t.elapsed();
        eprintln!(
            "connect to a silent server ({}) failed after {took:?}: {e}",
            if setting.is_empty() {
                "default timeout"
            } else {
                setting
            }
        );
        let msg = e.to_string();
        assert!(e.is_retryable(), "{e:?}");
        assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
        assert!(
            msg.contains(&format!("no answer within {expected} s (connect_timeout)")),
            "{msg}"
        );
        let expected = Duration::from_secs(expected);
        assert!(
            took >= expected && took < expected + Duration::from_millis(1500),
            "{took:?}"
        );
    }
    drop(silent);
}

#[test]
fn several_hosts_are_tried_in_order_and_every_failure_is_named() {
    let Some(server) = TestServer::builder().tcp().start() else {
        return;
    };
    let (dead, live) = (dead_port(), server.port().unwrap());
    let store = PostgresStore::connect(
        &format!("host=127.0.0.1,127.0.0.1 port={dead},{live} user=postgres sslmode=disable"),
        options(1),
    )
    .unwrap();
    assert_eq!(
        store.connection_security().unwrap().server,
        format!("127.0.0.1:{live}")
    );
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let quiet = silent.local_addr().unwrap().port();
    let e = PostgresStore::connect(
        &format!(
            "host=127.0.0.1,localhost port={dead},{quiet} user=postgres sslmode=disable connect_timeout=2"
        ),
        options(1),
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("cannot connect to any of the 2 PostgreSQL hosts"),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("127.0.0.1:{dead}: connection refused")),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("localhost:{quiet}: no answer within 2 s")),
        "{msg}"
    );
}

/// `pg_terminate_backend` on every connection: the next read reconnects, the next write
/// too, and nothing is written twice.
#[test]
fn terminated_connections_are_replaced_without_duplicate_writes() {
    let Some(server) = TestServer::start() else {
        return;
    };
    let store = PostgresStore::connect(&server.conninfo(), options(4)).unwrap();
    assert_eq!(put(&store, "a", Expect::Absent).unwrap(), 1);
    assert!(server.terminate_backends() >= 1);
    // A read on the dead pooled connection is run again on a new one.
    assert_eq!(store.get(Table::Meta, b"a").unwrap().unwrap().version, 1);
    server.terminate_backends();
    // A write on a dead connection: the server never saw it commit; it runs once more.
    assert_eq!(put(&store, "a", Expect::Version(1)).unwrap(), 2);
    server.terminate_backends();
    let mut b = Batch::new();
    b.append(Table::Audit, 0, "first");
    b.put(Table::Meta, "a", "x", Expect::Any);
    assert_eq!(store.commit(&b).unwrap().versions, [1, 3]);
    assert_eq!(store.log_head(Table::Audit).unwrap(), Some(0));
    assert_eq!(store.get(Table::Meta, b"a").unwrap().unwrap().version, 3);
    // Snapshots too.
    server.terminate_backends();
    let snap = store.snapshot().unwrap();
    assert_eq!(snap.get(Table::Meta, b"a").unwrap().unwrap().version, 3);
}

/// Terminating the backend while a long batch runs: the batch is rolled back by the
/// server and applied exactly once on a new connection.
#[test]
fn a_backend_terminated_mid_batch_applies_the_batch_once() {
    let Some(server) = TestServer::start() else {
        return;
    };
    let store = PostgresStore::connect(&server.conninfo(), options(2)).unwrap();
    let stop = AtomicBool::new(false);
    let kills = std::sync::atomic::AtomicU64::new(0);
    let (mut retried, mut unknown) = (0, 0);
    thread::scope(|s| {
        // Stops the killer even when an assertion below fails (the scope waits for it).
        struct StopOnDrop<'a>(&'a AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let _stop = StopOnDrop(&stop);
        s.spawn(|| {
            // Irregular intervals, around the time a batch takes: some batches are cut
            // in the middle, some at their start, some not at all.
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                thread::sleep(Duration::from_millis(15 + (n * 17) % 45));
                kills.fetch_add(server.terminate_backends(), Ordering::SeqCst);
            }
        });
        for seq in 0..30u64 {
            // 300 rows and an append: long enough to be cut in the middle.
            let mut b = Batch::new();
            for i in 0..300 {
                b.put(
                    Table::Deks,
                    format!("{seq}/{i}"),
                    vec![7u8; 512],
                    Expect::Absent,
                );
            }
            b.append(Table::Audit, seq, format!("entry {seq}"));
            for attempt in 0.. {
                assert!(attempt < 100, "batch {seq} never got through");
                match store.commit(&b) {
                    Ok(_) => break,
                    // Lost twice in a row: reported, retryable, nothing applied.
                    Err(e @ StoreError::Unavailable { .. })
                        if e.to_string().contains("nothing of the batch was applied") =>
                    {
                        retried += 1;
                    }
                    // Lost during COMMIT and the server could not be asked: re-read.
                    Err(e @ StoreError::Unavailable { .. })
                        if e.to_string().contains("is unknown") =>
                    {
                        unknown += 1;
                        if store.log_head(Table::Audit).ok().flatten() == Some(seq) {
                            break;
                        }
                    }
                    // A connection attempt that was itself terminated.
                    Err(e @ StoreError::Unavailable { .. }) => {
                        assert!(
                            e.to_string().contains("cannot connect")
                                || e.to_string().contains("57P01"),
                            "{e}"
                        );
                        retried += 1;
                    }
                    Err(e) => panic!("batch {seq}: {e}"),
                }
            }
        }
    });
    eprintln!(
        "{} backends terminated during 30 batches; {retried} reported as not applied, {unknown} as unknown",
        kills.load(Ordering::SeqCst)
    );
    assert_eq!(store.log_head(Table::Audit).unwrap(), Some(29));
    let rows = strongroom_store::scan_all(&store, Table::Deks, &strongroom_store::ScanRange::all())
        .unwrap();
    assert_eq!(rows.len(), 30 * 300);
    assert!(rows.iter().all(|r| r.version == 1), "a row written twice");
}

#[test]
fn a_restarted_server_is_reconnected_and_a_stopped_one_is_reported() {
    let Some(server) = TestServer::builder().tcp().start() else {
        return;
    };
    let conninfo = format!("{} sslmode=disable", server.tcp_conninfo());
    let store = PostgresStore::connect(&conninfo, options(4)).unwrap();
    put(&store, "before", Expect::Absent).unwrap();
    server.restart();
    assert!(store.get(Table::Meta, b"before").unwrap().is_some());
    put(&store, "after-restart", Expect::Absent).unwrap();

    server.stop_fast();
    let t = Instant::now();
    let e = store.get(Table::Meta, b"before").unwrap_err();
    let took = t.elapsed();
    let msg = e.to_string();
    assert!(e.is_retryable(), "{e:?}");
    assert!(
        msg.contains(&format!("127.0.0.1:{}", server.port().unwrap())),
        "{msg}"
    );
    assert!(msg.contains("connection refused"), "{msg}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    let e = put(&store, "while-down", Expect::Absent).unwrap_err();
    assert!(e.is_retryable(), "{e:?}");

    server.start_again();
    put(&store, "while-down", Expect::Absent).unwrap();
    assert!(store.get(Table::Meta, b"after-restart").unwrap().is_some());
}

// ---------------------------------------------------------------------------------------
// A proxy that loses the connection at the client's COMMIT.

const PASS: u8 = 0;
/// Close both sides instead of forwarding the COMMIT.
const CUT_BEFORE_COMMIT: u8 = 1;
/// Forward the COMMIT, drop the server's answer, close both sides.
const CUT_AFTER_COMMIT: u8 = 2;
/// As CUT_AFTER_COMMIT, then refuse new connections until set back to PASS.
const CUT_AFTER_COMMIT_THEN_REFUSE: u8 = 3;

struct Proxy {
    port: u16,
    /// What to do at the next COMMIT (one shot: back to PASS, or to REFUSING).
    mode: Arc<AtomicU8>,
    refusing: Arc<AtomicBool>,
    cuts: Arc<Mutex<u32>>,
}

impl Proxy {
    fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(PASS));
        let refusing = Arc::new(AtomicBool::new(false));
        let cuts = Arc::new(Mutex::new(0));
        let (m, r, c) = (mode.clone(), refusing.clone(), cuts.clone());
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                if r.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let (m, r, c) = (m.clone(), r.clone(), c.clone());
                thread::spawn(move || relay(client, server, &m, &r, &c));
            }
        });
        Proxy {
            port,
            mode,
            refusing,
            cuts,
        }
    }

    fn arm(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }

    fn pass(&self) {
        self.mode.store(PASS, Ordering::SeqCst);
        self.refusing.store(false, Ordering::SeqCst);
    }

    fn cuts(&self) -> u32 {
        *self.cuts.lock().unwrap()
    }
}

fn read_exact_or_end(s: &mut TcpStream, buf: &mut [u8]) -> bool {
    s.read_exact(buf).is_ok()
}

/// Client → server: the startup packet, then typed messages, watching for `Q COMMIT`.
/// Server → client: bytes as they come, until the cut.
fn relay(
    mut client: TcpStream,
    mut server: TcpStream,
    mode: &AtomicU8,
    refusing: &AtomicBool,
    cuts: &Mutex<u32>,
) {
    let muted = Arc::new(AtomicBool::new(false));
    let (mut from_server, mut to_client) =
        (server.try_clone().unwrap(), client.try_clone().unwrap());
    let mute = muted.clone();
    thread::spawn(move || {
        let mut buf = [0u8; 16384];
        loop {
            match from_server.read(&mut buf) {
                Ok(0) | Err(_) => break,
                // Muted: the server's answer is read and dropped.
                Ok(_) if mute.load(Ordering::SeqCst) => {}
                Ok(n) => {
                    if to_client.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to_client.shutdown(Shutdown::Both);
    });
    let close = |c: &TcpStream, s: &TcpStream| {
        let _ = c.shutdown(Shutdown::Both);
        let _ = s.shutdown(Shutdown::Both);
    };
    // Startup packet: length (including itself) and body, no type byte.
    let mut len = [0u8; 4];
    if !read_exact_or_end(&mut client, &mut len) {
        return close(&client, &server);
    }
    let mut body = vec![0u8; (u32::from_be_bytes(len) as usize).saturating_sub(4)];
    if !read_exact_or_end(&mut client, &mut body)
        || server.write_all(&len).is_err()
        || server.write_all(&body).is_err()
    {
        return close(&client, &server);
    }
    loop {
        let mut head = [0u8; 5];
        if !read_exact_or_end(&mut client, &mut head) {
            return close(&client, &server);
        }
        let n = u32::from_be_bytes(head[1..5].try_into().unwrap()) as usize;
        let mut body = vec![0u8; n.saturating_sub(4)];
        if !read_exact_or_end(&mut client, &mut body) {
            return close(&client, &server);
        }
        let is_commit = head[0] == b'Q' && body.strip_suffix(&[0]) == Some(b"COMMIT");
        let armed = if is_commit {
            mode.swap(PASS, Ordering::SeqCst)
        } else {
            PASS
        };
        match armed {
            CUT_BEFORE_COMMIT => {
                *cuts.lock().unwrap() += 1;
                return close(&client, &server);
            }
            CUT_AFTER_COMMIT | CUT_AFTER_COMMIT_THEN_REFUSE => {
                if armed == CUT_AFTER_COMMIT_THEN_REFUSE {
                    refusing.store(true, Ordering::SeqCst);
                }
                muted.store(true, Ordering::SeqCst);
                *cuts.lock().unwrap() += 1;
                let _ = server.write_all(&head);
                let _ = server.write_all(&body);
                // Let the server commit, then lose the connection before its answer.
                thread::sleep(Duration::from_millis(300));
                return close(&client, &server);
            }
            _ => {
                if server.write_all(&head).is_err() || server.write_all(&body).is_err() {
                    return close(&client, &server);
                }
            }
        }
    }
}

/// A batch that shows whether it was applied twice: an append (a second one at the same
/// place conflicts) and a put that bumps a version.
fn telltale(seq: u64) -> Batch {
    let mut b = Batch::new();
    b.append(Table::Audit, seq, format!("entry {seq}"));
    b.put(Table::Meta, "counter", seq.to_be_bytes(), Expect::Any);
    b
}

fn proxied() -> Option<(TestServer, Proxy, PostgresStore, PostgresStore)> {
    let server = TestServer::builder().tcp().start()?;
    let proxy = Proxy::start(server.port().unwrap());
    let via = PostgresStore::connect(
        &format!(
            "host=127.0.0.1 port={} user=postgres sslmode=disable connect_timeout=2",
            proxy.port
        ),
        options(2),
    )
    .unwrap();
    let direct = PostgresStore::connect(&server.conninfo(), options(1)).unwrap();
    Some((server, proxy, via, direct))
}

#[test]
fn a_connection_lost_before_commit_applies_the_batch_once() {
    let Some((_server, proxy, via, direct)) = proxied() else {
        return;
    };
    via.commit(&telltale(0)).unwrap();
    proxy.arm(CUT_BEFORE_COMMIT);
    assert_eq!(via.commit(&telltale(1)).unwrap().versions, [1, 2]);
    assert_eq!(proxy.cuts(), 1, "the proxy cut the connection");
    assert_eq!(direct.log_head(Table::Audit).unwrap(), Some(1));
    assert_eq!(
        direct
            .get(Table::Meta, b"counter")
            .unwrap()
            .unwrap()
            .version,
        2
    );
}

#[test]
fn a_connection_lost_during_commit_asks_the_server_and_never_applies_twice() {
    let Some((_server, proxy, via, direct)) = proxied() else {
        return;
    };
    via.commit(&telltale(0)).unwrap();
    proxy.arm(CUT_AFTER_COMMIT);
    // The server committed; the answer was lost; the store asks and reports success.
    assert_eq!(via.commit(&telltale(1)).unwrap().versions, [1, 2]);
    assert_eq!(proxy.cuts(), 1, "the proxy cut the connection");
    assert_eq!(direct.log_head(Table::Audit).unwrap(), Some(1));
    assert_eq!(
        direct
            .get(Table::Meta, b"counter")
            .unwrap()
            .unwrap()
            .version,
        2
    );
    // And goes on over a new connection.
    via.commit(&telltale(2)).unwrap();
    assert_eq!(direct.log_head(Table::Audit).unwrap(), Some(2));
}

#[test]
fn an_unknown_commit_outcome_is_reported_as_such() {
    let Some((_server, proxy, via, direct)) = proxied() else {
        return;
    };
    via.commit(&telltale(0)).unwrap();
    proxy.arm(CUT_AFTER_COMMIT_THEN_REFUSE);
    let e = via.commit(&telltale(1)).unwrap_err();
    let msg = e.to_string();
    assert!(e.is_retryable(), "{e:?}");
    assert!(
        msg.contains("lost during COMMIT and whether the batch was applied is unknown"),
        "{msg}"
    );
    assert!(msg.contains("re-read before retrying"), "{msg}");
    // It was applied: re-reading shows it, and running it again is refused (the CAS
    // precondition of the append), never applied twice.
    proxy.pass();
    assert_eq!(direct.log_head(Table::Audit).unwrap(), Some(1));
    assert!(via.commit(&telltale(1)).unwrap_err().is_conflict());
    assert_eq!(
        direct
            .get(Table::Meta, b"counter")
            .unwrap()
            .unwrap()
            .version,
        2
    );
}
