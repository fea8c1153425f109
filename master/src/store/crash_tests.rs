//! The crash test: kill -9 of a writer loses no acknowledged write.
//!
//! The test re-executes its own test binary (`std::env::current_exe()`) with [`WRITER_ENV`] naming a
//! store file; in that child, the same test function acts as the writer: it commits numbered
//! transactions in a loop (each puts a data key, with a value about the size of an IPAM block, and an
//! index key together) and prints `ACK <n>` after each commit returns. The parent reads a few hundred
//! acks, waits a little (a different delay each round, to land in different phases of a commit),
//! kills the child with SIGKILL (`Child::kill`) in the middle of its loop, reopens the file and checks that every acknowledged
//! transaction is there whole, that nothing else is half there, and that the revision and the change
//! log agree with the data. It does this for several rounds on the same file, so recovery of a file
//! that was itself recovered is covered too.

use std::{
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use super::*;

const WRITER_ENV: &str = "CALICO_STORE_CRASH_WRITER";
const TEST_NAME: &str = "store::crash_tests::kill_9_loses_no_acknowledged_write";
const ROUNDS: u64 = 4;
const ACKS_PER_ROUND: u64 = 300;

fn options() -> EmbeddedOptions {
    EmbeddedOptions {
        history: 1_000_000,
        ..EmbeddedOptions::default()
    }
}

fn data_key(n: u64) -> String {
    format!("/crash/data/{n:08}")
}

fn index_key(n: u64) -> String {
    format!("/crash/index/{n:08}")
}

/// About the size of a stored /26 IPAM block, so that a commit spans several pages.
fn data_value(n: u64) -> Vec<u8> {
    format!(
        "{{\"n\":{n},\"pad\":\"{}\"}}",
        "x".repeat(2_000 + (n % 7) as usize * 300)
    )
    .into_bytes()
}

/// The child: write forever (until killed), acknowledging each durable commit on stdout.
fn writer(path: &Path) -> ! {
    let store = match EmbeddedStore::open(path, options()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("crash writer: cannot open {}: {e}", path.display());
            std::process::exit(3);
        }
    };
    let mut n = store.revision().unwrap_or(0);
    let mut out = std::io::stdout().lock();
    loop {
        let txn = Txn::new()
            .when(Compare::absent(data_key(n)))
            .and_then(Op::put(data_key(n), data_value(n)))
            .and_then(Op::put(index_key(n), n.to_string()));
        match store.txn(txn) {
            Ok(r) if r.succeeded && r.revision == n + 1 => {}
            other => {
                eprintln!("crash writer: transaction {n} failed: {other:?}");
                std::process::exit(4);
            }
        }
        // Written straight to the process's stdout, past the test harness's capture.
        if writeln!(out, "ACK {n}").and_then(|()| out.flush()).is_err() {
            std::process::exit(5);
        }
        n += 1;
    }
}

/// Run one writer until it has acknowledged `ACKS_PER_ROUND` more transactions, then SIGKILL it.
/// Returns the last acknowledged number.
fn run_and_kill(path: &Path, delay: Duration) -> u64 {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(WRITER_ENV, path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(n) = line.strip_prefix("ACK ") {
                if tx.send(n.parse::<u64>().unwrap()).is_err() {
                    break;
                }
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut acks = Vec::new();
    while (acks.len() as u64) < ACKS_PER_ROUND {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(n) => acks.push(n),
            Err(e) => {
                let _ = child.kill();
                let status = child.wait();
                panic!(
                    "writer gave {} acks, then {e:?} (exit: {status:?})",
                    acks.len()
                );
            }
        }
    }
    // The writer is still committing: kill it mid-loop.
    thread::sleep(delay);
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the writer was killed, not finished");
    // Acks printed between the last read and the kill are acknowledged too.
    acks.extend(rx.iter());
    reader.join().unwrap();
    for w in acks.windows(2) {
        assert_eq!(w[1], w[0] + 1, "acks are consecutive");
    }
    *acks.last().unwrap()
}

/// Check the file after a crash: returns the number of transactions it holds.
fn check_recovered(path: &Path, last_ack: u64) -> u64 {
    let store = EmbeddedStore::open(path, options()).unwrap();
    let data = store.list("/crash/data/").unwrap();
    let index = store.list("/crash/index/").unwrap();
    let n = data.kvs.len() as u64;
    assert!(
        n > last_ack,
        "acknowledged transaction {last_ack} is missing: only {n} on file"
    );
    assert_eq!(index.kvs.len() as u64, n, "a transaction is half on file");
    for (i, (d, x)) in data.kvs.iter().zip(&index.kvs).enumerate() {
        let i = i as u64;
        assert_eq!(d.key, data_key(i));
        assert_eq!(d.value, data_value(i));
        assert_eq!(x.key, index_key(i));
        assert_eq!(d.mod_revision, i + 1);
        assert_eq!(x.mod_revision, i + 1);
    }
    assert_eq!(store.revision().unwrap(), n, "one revision per transaction");
    let log = store.changes_since(0).unwrap();
    assert_eq!(log.len() as u64, 2 * n, "the change log matches the data");
    assert!(log
        .iter()
        .enumerate()
        .all(|(i, e)| e.mod_revision == i as u64 / 2 + 1 && e.kind == EventKind::Put));
    n
}

#[test]
fn kill_9_loses_no_acknowledged_write() {
    if let Some(path) = std::env::var_os(WRITER_ENV) {
        writer(Path::new(&path));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let mut on_file = 0;
    for round in 0..ROUNDS {
        let started = Instant::now();
        let last_ack = run_and_kill(&path, Duration::from_micros(round * 700));
        assert!(last_ack + 1 >= on_file + ACKS_PER_ROUND);
        let n = check_recovered(&path, last_ack);
        eprintln!(
            "round {round}: last ack {last_ack}, {n} transactions on file after kill -9 ({} unacknowledged), {:?}",
            n - last_ack - 1,
            started.elapsed()
        );
        on_file = n;
    }
}
