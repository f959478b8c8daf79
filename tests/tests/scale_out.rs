//! Scale-out: Kamailio (a real SIP proxy, `docs/kamailio/dispatcher.cfg`) in
//! front of three Parrot UAS nodes. sipp places calls through the proxy, which
//! spreads them round-robin, record-routes (ACK and BYE go through it to the
//! node that answered), probes the nodes with OPTIONS and fails over to the
//! next node when one does not answer. Phase 1: 300 calls, every one
//! completes, each node takes about a third. Phase 2: a node is shut down in
//! the middle of 200 calls; probing marks it down, later calls go to the two
//! live nodes only, and no call is lost (failover covers the gap).
//!
//! Run with `--nocapture` to see the distribution.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use parrot_core::ua::{Endpoint, Incoming, Reply, SipHandler};
use parrot_tests::{Kamailio, TempDir, free_addr, free_port, scenarios, sipp};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The configuration under test is the documented one.
const CONFIG: &str = include_str!("../../docs/kamailio/dispatcher.cfg");

const SIPP_LIMIT: Duration = Duration::from_secs(90);

/// Answers every INVITE with 200 and counts it.
struct Counting(Arc<AtomicUsize>);

impl SipHandler for Counting {
    async fn invite(&mut self, _call: &mut Incoming) -> Reply {
        self.0.fetch_add(1, Ordering::Relaxed);
        Reply::ok()
    }
}

struct Node {
    ep: Endpoint,
    addr: SocketAddr,
    answered: Arc<AtomicUsize>,
}

impl Node {
    async fn start() -> Node {
        let addr = free_addr();
        let answered = Arc::new(AtomicUsize::new(0));
        let count = answered.clone();
        let ep = Endpoint::builder()
            .udp(addr)
            .handler(move || Counting(count.clone()))
            .build()
            .await
            .unwrap();
        Node { ep, addr, answered }
    }

    fn answered(&self) -> usize {
        self.answered.load(Ordering::Relaxed)
    }
}

/// sipp's uac scenario, made to follow the route set, through the proxy.
async fn calls_through(proxy: SocketAddr, calls: u32, rate: u32) -> parrot_tests::SippRun {
    let scenario = scenarios().join("uac_rr.xml");
    let scenario = scenario.to_string_lossy();
    let target = proxy.to_string();
    let port = free_port().to_string();
    let (calls, rate) = (calls.to_string(), rate.to_string());
    let args = [
        "-sf",
        &scenario,
        &target,
        "-s",
        "service",
        "-i",
        "127.0.0.1",
        "-p",
        &port,
        "-m",
        &calls,
        "-r",
        &rate,
        "-timeout",
        "60s",
    ];
    sipp(&args, SIPP_LIMIT).await
}

fn report(what: &str, run: &parrot_tests::SippRun) {
    eprintln!(
        "{what}: sipp exit {:?}, successful {:?}, failed {:?}, retransmissions {:?}",
        run.code,
        run.stat("SuccessfulCall(C)"),
        run.stat("FailedCall(C)"),
        run.stat("Retransmissions(C)")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kamailio_spreads_calls_over_three_parrot_nodes_and_survives_one_dying() {
    tokio::time::timeout(Duration::from_secs(180), scale_out())
        .await
        .expect("the scale-out test did not finish within 180 s");
}

async fn scale_out() {
    let nodes = [
        Node::start().await,
        Node::start().await,
        Node::start().await,
    ];

    let dir = TempDir::new("kamailio");
    let config = dir.join("dispatcher.cfg");
    std::fs::write(&config, CONFIG).unwrap();
    let list: String = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| format!("1 sip:{} 0 0 name=parrot-{}\n", n.addr, i + 1))
        .collect();
    let list_file = dir.join("dispatcher.list");
    std::fs::write(&list_file, &list).unwrap();
    let proxy = free_addr();
    // Probing every second, one failed probe (no 200 within FR_TIMER = 1 s)
    // marks a node down: a dead node is out of rotation within ~2 s.
    let defines = [
        ("LISTEN", format!("udp:{proxy}")),
        ("DS_LIST", format!("\"{}\"", list_file.display())),
        ("DS_PING_INTERVAL", "1".to_owned()),
        ("DS_PROBING_THRESHOLD", "1".to_owned()),
        ("FR_TIMER", "1000".to_owned()),
        ("FR_INV_TIMER", "5000".to_owned()),
    ];
    let kamailio = Kamailio::start(
        &config,
        dir.path(),
        proxy,
        &defines,
        Duration::from_secs(15),
    )
    .await;
    eprintln!("kamailio: {}", kamailio.command_line());
    eprintln!("dispatcher.list:\n{list}");

    // Phase 1: 300 calls, every one completes, each node takes about a third.
    let run = calls_through(proxy, 300, 50).await;
    report("phase 1: 300 calls at 50 cps through kamailio", &run);
    let counts: Vec<usize> = nodes.iter().map(Node::answered).collect();
    let total: usize = counts.iter().sum();
    for (i, c) in counts.iter().enumerate() {
        eprintln!(
            "  parrot-{} ({}): {c} calls ({:.1} %)",
            i + 1,
            nodes[i].addr,
            100.0 * *c as f64 / total.max(1) as f64
        );
    }
    assert_eq!(
        run.code,
        Some(0),
        "{}\n--- kamailio ---\n{}",
        run.output,
        kamailio.log()
    );
    assert_eq!(run.stat("SuccessfulCall(C)"), Some(300), "{}", run.output);
    assert_eq!(run.stat("FailedCall(C)"), Some(0), "{}", run.output);
    assert_eq!(total, 300, "every call answered by exactly one node");
    for (i, c) in counts.iter().enumerate() {
        let share = *c as f64 / total as f64;
        assert!(
            (0.25..=0.42).contains(&share),
            "parrot-{} took {c} of {total} calls",
            i + 1
        );
    }

    // Phase 2: 200 calls at 20 cps (10 s); parrot-2 dies after 2 s.
    let before: Vec<usize> = nodes.iter().map(Node::answered).collect();
    let batch = tokio::spawn(calls_through(proxy, 200, 20));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let [live_a, dead, live_b] = &nodes;
    // Shut down: new INVITEs get 503 for the short grace period (the proxy
    // fails over on 5xx), then the socket is closed (the proxy's INVITEs and
    // probes go unanswered: failover after FR_TIMER, node marked down by the
    // next probe). The few calls in their ~millisecond between 200 and BYE
    // at that moment are hung up by the node, which sipp counts as failed.
    dead.ep.shutdown(Duration::from_millis(200)).await;
    let at_kill: Vec<usize> = nodes.iter().map(Node::answered).collect();
    let killed_at = tokio::time::Instant::now();
    let down_line = format!("destination down: sip:{}", dead.addr);
    let mut marked_down = None;
    while killed_at.elapsed() < Duration::from_secs(8) {
        if kamailio.log().contains(&down_line) {
            marked_down = Some(killed_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after_mark: Vec<usize> = nodes.iter().map(Node::answered).collect();
    let run = batch.await.unwrap();
    let end: Vec<usize> = nodes.iter().map(Node::answered).collect();
    report(
        "phase 2: 200 calls at 20 cps, parrot-2 shut down after 2 s",
        &run,
    );
    let log = kamailio.log();
    let failovers = log.matches("trying the next node").count();
    eprintln!(
        "  parrot-2 marked down by probing {:?} after the shutdown; {failovers} INVITEs failed over",
        marked_down
    );
    for (i, n) in nodes.iter().enumerate() {
        eprintln!(
            "  parrot-{} ({}): {} before the kill, {} after it ({} after it was marked down)",
            i + 1,
            n.addr,
            at_kill[i] - before[i],
            end[i] - at_kill[i],
            end[i] - after_mark[i]
        );
    }
    let failed = run.stat("FailedCall(C)").unwrap_or(u64::MAX);
    let successful = run.stat("SuccessfulCall(C)").unwrap_or(0);
    assert!(
        marked_down.is_some(),
        "kamailio never logged `{down_line}`:\n{log}"
    );
    // Failover hides the dead node from the caller: an INVITE sent to it
    // (before probing marks it down) times out after FR_TIMER and goes to the
    // next node. Only a call caught between its 200 and its BYE when the node
    // stops can fail (the node hangs it up); at 20 cps with calls lasting a
    // few milliseconds that is rarely more than one.
    assert!(
        failed <= 2,
        "{failed} calls failed\n{}\n--- kamailio ---\n{log}",
        run.output
    );
    assert_eq!(successful + failed, 200, "{}", run.output);
    // After the kill, calls reached the two live nodes only, and every call
    // placed after it was answered by one of them.
    assert_eq!(end[1], at_kill[1], "the dead node answered nothing more");
    let answered_phase2: usize = (0..3).map(|i| end[i] - before[i]).sum();
    assert!(
        answered_phase2 as u64 >= successful,
        "{answered_phase2} calls answered, {successful} successful"
    );
    for (name, node, i) in [("parrot-1", live_a, 0), ("parrot-3", live_b, 2)] {
        assert!(
            end[i] - at_kill[i] >= 30,
            "{name} ({}) took only {} calls after the kill",
            node.addr,
            end[i] - at_kill[i]
        );
    }
    assert!(
        end[0] - at_kill[0] + end[2] - at_kill[2] >= 120,
        "the live nodes took {} calls after the kill",
        end[0] - at_kill[0] + end[2] - at_kill[2]
    );

    for n in [live_a, live_b] {
        n.ep.shutdown(Duration::from_secs(1)).await;
    }
    drop(kamailio);
}
