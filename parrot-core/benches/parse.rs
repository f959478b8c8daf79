//! Typed SIP parse benchmark: parrot vs rsipstack vs rsip 0.4.
//!
//! Run with `cargo xtask bench parse` (or `cargo bench -p parrot-core --bench parse`).
//! Each contender parses a message AND reads, typed: the top Via branch, the
//! From and To tags, Call-ID and CSeq (number and method). The values are
//! checked once against the expected ones before timing; a contender that reads
//! a wrong value is reported as `n/a` with the reason instead of being timed.
//!
//! Timing: a warm-up, then [`BATCHES`] rounds in which every contender parses
//! a batch of about [`BATCH_TIME`] (the order rotates from round to round),
//! timed with [`Instant`]; the result is each contender's median ns per
//! message over its batches. Results go to stdout as a table and to
//! `$CARGO_TARGET_DIR/bench/parse.json` (default `<workspace>/target/bench/parse.json`).
//!
//! Without `--bench` (as under `cargo test --all-targets`) it only checks the
//! values, so the test suite sees a parrot parser regression here too.
//! Either way it exits non-zero if parrot reads a wrong value.

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const BATCHES: usize = 61;
const BATCH_TIME: Duration = Duration::from_millis(10);
const WARM_UP: Duration = Duration::from_millis(200);

// ---------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------

/// An INVITE with SDP after one proxy hop (RFC 3261 §24.2 style): 626 bytes.
const INVITE: &[u8] = concat!(
    "INVITE sip:bob@biloxi.com SIP/2.0\r\n",
    "Via: SIP/2.0/UDP ss1.atlanta.com;branch=z9hG4bK2d4790.1\r\n",
    "Via: SIP/2.0/UDP pc33.atlanta.com:5060;branch=z9hG4bKnashds8\r\n",
    "Max-Forwards: 69\r\n",
    "To: Bob <sip:bob@biloxi.com>\r\n",
    "From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n",
    "Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n",
    "CSeq: 314159 INVITE\r\n",
    "Contact: <sip:alice@pc33.atlanta.com>\r\n",
    "Content-Type: application/sdp\r\n",
    "Content-Length: 216\r\n",
    "\r\n",
    "v=0\r\n",
    "o=alice 2890844526 2890844526 IN IP4 pc33.atlanta.com\r\n",
    "s=-\r\n",
    "c=IN IP4 192.0.2.101\r\n",
    "t=0 0\r\n",
    "m=audio 49172 RTP/AVP 0 8 101\r\n",
    "a=rtpmap:0 PCMU/8000\r\n",
    "a=rtpmap:8 PCMA/8000\r\n",
    "a=rtpmap:101 telephone-event/8000\r\n",
    "a=sendrecv\r\n",
)
.as_bytes();

/// The 200 OK answering [`INVITE`], with To tag, Record-Route and SDP answer.
const OK_200: &[u8] = concat!(
    "SIP/2.0 200 OK\r\n",
    "Via: SIP/2.0/UDP ss1.atlanta.com;branch=z9hG4bK2d4790.1\r\n",
    "Via: SIP/2.0/UDP pc33.atlanta.com:5060;branch=z9hG4bKnashds8\r\n",
    "Record-Route: <sip:ss1.atlanta.com;lr>\r\n",
    "To: Bob <sip:bob@biloxi.com>;tag=a6c85cf\r\n",
    "From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n",
    "Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n",
    "CSeq: 314159 INVITE\r\n",
    "Contact: <sip:bob@client.biloxi.com>\r\n",
    "Content-Type: application/sdp\r\n",
    "Content-Length: 219\r\n",
    "\r\n",
    "v=0\r\n",
    "o=bob 2808844564 2808844564 IN IP4 client.biloxi.com\r\n",
    "s=-\r\n",
    "c=IN IP4 192.0.2.201\r\n",
    "t=0 0\r\n",
    "m=audio 3456 RTP/AVP 0 101\r\n",
    "a=rtpmap:0 PCMU/8000\r\n",
    "a=rtpmap:101 telephone-event/8000\r\n",
    "a=fmtp:101 0-16\r\n",
    "a=ptime:20\r\n",
    "a=sendrecv\r\n",
)
.as_bytes();

/// A REGISTER with Contact expires and Expires, no body.
const REGISTER: &[u8] = concat!(
    "REGISTER sip:registrar.biloxi.com SIP/2.0\r\n",
    "Via: SIP/2.0/UDP bobspc.biloxi.com:5060;branch=z9hG4bKnashds7\r\n",
    "Max-Forwards: 70\r\n",
    "To: Bob <sip:bob@biloxi.com>\r\n",
    "From: Bob <sip:bob@biloxi.com>;tag=456248\r\n",
    "Call-ID: 843817637684230@998sdasdh09\r\n",
    "CSeq: 1826 REGISTER\r\n",
    "Contact: <sip:bob@192.0.2.4>;expires=7200\r\n",
    "Expires: 7200\r\n",
    "Content-Length: 0\r\n",
    "\r\n",
)
.as_bytes();

const _: () = assert!(INVITE.len() == 626, "the INVITE must be exactly 626 bytes");

/// What every contender must read from a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fields<'a> {
    branch: Option<&'a str>,
    from_tag: Option<&'a str>,
    to_tag: Option<&'a str>,
    call_id: Option<&'a str>,
    cseq: Option<(u32, &'a str)>,
}

struct Case {
    /// Short name, used in the JSON.
    name: &'static str,
    bytes: &'static [u8],
    expected: Fields<'static>,
}

const CASES: &[Case] = &[
    Case {
        name: "INVITE",
        bytes: INVITE,
        expected: Fields {
            branch: Some("z9hG4bK2d4790.1"),
            from_tag: Some("1928301774"),
            to_tag: None,
            call_id: Some("a84b4c76e66710@pc33.atlanta.com"),
            cseq: Some((314159, "INVITE")),
        },
    },
    Case {
        name: "200 OK",
        bytes: OK_200,
        expected: Fields {
            branch: Some("z9hG4bK2d4790.1"),
            from_tag: Some("1928301774"),
            to_tag: Some("a6c85cf"),
            call_id: Some("a84b4c76e66710@pc33.atlanta.com"),
            cseq: Some((314159, "INVITE")),
        },
    },
    Case {
        name: "REGISTER",
        bytes: REGISTER,
        expected: Fields {
            branch: Some("z9hG4bKnashds7"),
            from_tag: Some("456248"),
            to_tag: None,
            call_id: Some("843817637684230@998sdasdh09"),
            cseq: Some((1826, "REGISTER")),
        },
    },
];

// ---------------------------------------------------------------------------
// Contenders: parse `bytes`, read the fields typed, hand them to `sink`.
// ---------------------------------------------------------------------------

type Sink<'s> = &'s mut dyn FnMut(&Fields<'_>);

struct Contender {
    name: &'static str,
    run: fn(&'static [u8], Sink<'_>) -> Result<(), String>,
}

/// The first `OURS` contenders are parrot's; ratios divide the others by each of them.
const CONTENDERS: &[Contender] = &[
    Contender {
        name: "parrot",
        run: parrot,
    },
    Contender {
        name: "parrot-lazy",
        run: parrot_lazy,
    },
    Contender {
        name: "rsipstack",
        run: rsipstack,
    },
    Contender {
        name: "rsip",
        run: rsip,
    },
];

const OURS: usize = 2;

/// `Message::parse`: every interpreted header (Via, From, To, Call-ID, CSeq,
/// Max-Forwards, Contact, Route, Record-Route) parsed and checked. The bytes are
/// first copied into a fresh buffer, as a received datagram would be (the
/// other contenders copy what they keep into their own Strings).
fn parrot(bytes: &'static [u8], sink: Sink<'_>) -> Result<(), String> {
    use parrot_core::message::Message;
    let msg = Message::parse(bytes::Bytes::copy_from_slice(bytes)).map_err(|e| e.to_string())?;
    read_parrot(&msg, sink);
    Ok(())
}

/// `Message::parse_lazy`: framing, start line and Content-Length now; each
/// typed header on first read, as rsip and rsipstack do.
fn parrot_lazy(bytes: &'static [u8], sink: Sink<'_>) -> Result<(), String> {
    use parrot_core::message::Message;
    let msg =
        Message::parse_lazy(bytes::Bytes::copy_from_slice(bytes)).map_err(|e| e.to_string())?;
    read_parrot(&msg, sink);
    Ok(())
}

fn read_parrot(msg: &parrot_core::message::Message, sink: Sink<'_>) {
    let h = msg.headers();
    sink(&Fields {
        branch: h.top_via().and_then(|v| v.branch()),
        from_tag: h.from().and_then(|f| f.tag()),
        to_tag: h.to().and_then(|t| t.tag()),
        call_id: h.call_id().map(|c| c.as_str()),
        cseq: h.cseq().map(|c| (c.seq, c.method.as_str())),
    });
}

fn rsipstack(bytes: &'static [u8], sink: Sink<'_>) -> Result<(), String> {
    use rsipstack::sip::prelude::*;
    let msg = rsipstack::sip::parser::parse_message(bytes).map_err(|e| e.to_string())?;
    let via = msg
        .top_via_header()
        .and_then(|v| v.typed())
        .map_err(|e| format!("Via: {e}"))?;
    let from = msg
        .from_header()
        .and_then(|h| h.typed())
        .map_err(|e| format!("From: {e}"))?;
    let to = msg
        .to_header()
        .and_then(|h| h.typed())
        .map_err(|e| format!("To: {e}"))?;
    let call_id = msg.call_id_header().map_err(|e| format!("Call-ID: {e}"))?;
    let cseq = msg
        .cseq_header()
        .and_then(|h| h.typed())
        .map_err(|e| format!("CSeq: {e}"))?;
    sink(&Fields {
        branch: via.branch().map(|b| &**b),
        from_tag: from.tag().map(|t| &**t),
        to_tag: to.tag().map(|t| &**t),
        call_id: Some(call_id.value()),
        cseq: Some((cseq.seq, rsipstack_method(cseq.method))),
    });
    Ok(())
}

fn rsip(bytes: &'static [u8], sink: Sink<'_>) -> Result<(), String> {
    use rsip::prelude::*;
    let msg = rsip::SipMessage::try_from(bytes).map_err(|e| e.to_string())?;
    let via = msg
        .via_header()
        .and_then(|v| v.typed())
        .map_err(|e| format!("Via: {e}"))?;
    let from = msg
        .from_header()
        .and_then(|h| h.typed())
        .map_err(|e| format!("From: {e}"))?;
    let to = msg
        .to_header()
        .and_then(|h| h.typed())
        .map_err(|e| format!("To: {e}"))?;
    let call_id = msg.call_id_header().map_err(|e| format!("Call-ID: {e}"))?;
    let cseq = msg
        .cseq_header()
        .and_then(|h| h.typed())
        .map_err(|e| format!("CSeq: {e}"))?;
    sink(&Fields {
        branch: via.branch().map(|b| b.value()),
        from_tag: from.tag().map(|t| t.value()),
        to_tag: to.tag().map(|t| t.value()),
        call_id: Some(call_id.value()),
        cseq: Some((cseq.seq, rsip_method(cseq.method))),
    });
    Ok(())
}

/// Both crates' `Method` has these variants; their `Display` allocates (rsip
/// upper-cases a `String`), which we keep out of the measurement.
macro_rules! method_name {
    ($name:ident, $ty:ty) => {
        fn $name(m: $ty) -> &'static str {
            type M = $ty;
            match m {
                M::Ack => "ACK",
                M::Bye => "BYE",
                M::Cancel => "CANCEL",
                M::Info => "INFO",
                M::Invite => "INVITE",
                M::Message => "MESSAGE",
                M::Notify => "NOTIFY",
                M::Options => "OPTIONS",
                M::PRack => "PRACK",
                M::Publish => "PUBLISH",
                M::Refer => "REFER",
                M::Register => "REGISTER",
                M::Subscribe => "SUBSCRIBE",
                M::Update => "UPDATE",
            }
        }
    };
}
method_name!(rsip_method, rsip::Method);
method_name!(rsipstack_method, rsipstack::sip::Method);

// ---------------------------------------------------------------------------
// Checking and timing
// ---------------------------------------------------------------------------

/// Runs `contender` once on `case` and says what it got wrong, if anything.
fn check(contender: &Contender, case: &Case) -> Result<(), String> {
    let mut problems = Vec::new();
    let mut called = false;
    let expected = case.expected;
    (contender.run)(case.bytes, &mut |got: &Fields<'_>| {
        called = true;
        let mut diff =
            |what: &str, got: &dyn std::fmt::Debug, want: &dyn std::fmt::Debug, same: bool| {
                if !same {
                    problems.push(format!("{what}: got {got:?}, expected {want:?}"));
                }
            };
        diff(
            "Via branch",
            &got.branch,
            &expected.branch,
            got.branch == expected.branch,
        );
        diff(
            "From tag",
            &got.from_tag,
            &expected.from_tag,
            got.from_tag == expected.from_tag,
        );
        diff(
            "To tag",
            &got.to_tag,
            &expected.to_tag,
            got.to_tag == expected.to_tag,
        );
        diff(
            "Call-ID",
            &got.call_id,
            &expected.call_id,
            got.call_id == expected.call_id,
        );
        diff("CSeq", &got.cseq, &expected.cseq, got.cseq == expected.cseq);
    })
    .map_err(|e| format!("parse error: {e}"))?;
    if !called {
        problems.push("returned no values".to_owned());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn run_n(contender: &Contender, case: &Case, n: u64) {
    let mut sink = |f: &Fields<'_>| {
        black_box(f);
    };
    for _ in 0..n {
        // Checked before timing: errors cannot happen here.
        let _ = black_box((contender.run)(black_box(case.bytes), &mut sink));
    }
}

/// Median nanoseconds per message of each contender on `case`. After a
/// warm-up each, the contenders are timed in rounds, one batch of each per
/// round in an order that rotates: the machine is shared and its speed
/// drifts over seconds, and timed one after the other (as this bench did)
/// the contenders met different machines, which swung the ratios by ±30 %
/// from run to run. Interleaved, a slow spell falls on all of them alike.
fn time_all(contenders: &[&Contender], case: &Case) -> Vec<f64> {
    let batches: Vec<u64> = contenders
        .iter()
        .map(|c| {
            // Warm up, and learn roughly how long one message takes.
            let start = Instant::now();
            let mut n = 0u64;
            while start.elapsed() < WARM_UP {
                run_n(c, case, 100);
                n += 100;
            }
            let per_msg = start.elapsed().as_secs_f64() / n as f64;
            ((BATCH_TIME.as_secs_f64() / per_msg) as u64).max(1)
        })
        .collect();
    let mut samples = vec![Vec::with_capacity(BATCHES); contenders.len()];
    for round in 0..BATCHES {
        for k in 0..contenders.len() {
            let i = (round + k) % contenders.len();
            let t = Instant::now();
            run_n(contenders[i], case, batches[i]);
            samples[i].push(t.elapsed().as_nanos() as f64 / batches[i] as f64);
        }
    }
    samples
        .into_iter()
        .map(|mut s| {
            s.sort_by(f64::total_cmp);
            s[s.len() / 2]
        })
        .collect()
}

/// Checks the messages themselves: Content-Length matches the body.
fn check_messages() -> Result<(), String> {
    for case in CASES {
        let text = std::str::from_utf8(case.bytes).map_err(|e| e.to_string())?;
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| format!("{}: no blank line", case.name))?;
        let declared: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| format!("{}: no Content-Length", case.name))?;
        if declared != body.len() {
            return Err(format!(
                "{}: Content-Length {declared} but the body is {} bytes",
                case.name,
                body.len()
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------

/// One contender on one message: timed, or `n/a` with the reason.
type Outcome = Result<f64, String>;

fn main() -> ExitCode {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    if let Err(e) = check_messages() {
        eprintln!("error: bad test message: {e}");
        return ExitCode::FAILURE;
    }
    let mut parrot_ok = true;
    let mut results: Vec<Vec<Outcome>> = Vec::new();
    for case in CASES {
        let mut row = Vec::new();
        for (i, contender) in CONTENDERS.iter().enumerate() {
            let outcome = check(contender, case);
            if let Err(why) = &outcome {
                if i < OURS {
                    parrot_ok = false;
                }
                if !bench_mode {
                    // In bench mode the table lists these.
                    eprintln!("{} / {}: n/a: {why}", case.name, contender.name);
                }
            }
            row.push(outcome.map(|()| f64::NAN));
        }
        if bench_mode {
            let timed: Vec<usize> = (0..row.len()).filter(|&i| row[i].is_ok()).collect();
            let contenders: Vec<&Contender> = timed.iter().map(|&i| &CONTENDERS[i]).collect();
            for (&i, ns) in timed.iter().zip(time_all(&contenders, case)) {
                row[i] = Ok(ns);
            }
        }
        results.push(row);
    }
    if !bench_mode {
        println!(
            "parse bench: values checked for {} messages x {} contenders (run with --bench to time)",
            CASES.len(),
            CONTENDERS.len()
        );
    } else {
        print!("{}", table(&results));
        let json = json(&results);
        let dir = target_dir().join("bench");
        let path = dir.join("parse.json");
        if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, json)) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {}", path.display());
    }
    if parrot_ok {
        ExitCode::SUCCESS
    } else {
        eprintln!("error: parrot read wrong values (see above)");
        ExitCode::FAILURE
    }
}

fn label(case: &Case) -> String {
    format!("{} ({} B)", case.name, case.bytes.len())
}

/// `other / ours`, when both were timed.
fn ratio(row: &[Outcome], ours: usize, i: usize) -> Option<f64> {
    match (&row[ours], &row[i]) {
        (Ok(base), Ok(other)) if *base > 0.0 => Some(other / base),
        _ => None,
    }
}

fn table(results: &[Vec<Outcome>]) -> String {
    let mut header = vec!["message".to_owned()];
    header.extend(CONTENDERS.iter().map(|c| c.name.to_owned()));
    for ours in &CONTENDERS[..OURS] {
        header.extend(
            CONTENDERS[OURS..]
                .iter()
                .map(|c| format!("{}/{}", c.name, ours.name)),
        );
    }
    let mut rows = vec![header];
    let mut notes: Vec<String> = Vec::new();
    for (case, row) in CASES.iter().zip(results) {
        let mut cells = vec![label(case)];
        for (contender, outcome) in CONTENDERS.iter().zip(row) {
            cells.push(match outcome {
                Ok(ns) => format!("{ns:.0} ns"),
                Err(why) => {
                    notes.push(format!("{} / {}: {why}", case.name, contender.name));
                    format!("n/a [{}]", notes.len())
                }
            });
        }
        for ours in 0..OURS {
            for i in OURS..CONTENDERS.len() {
                cells.push(
                    ratio(row, ours, i).map_or_else(|| "n/a".to_owned(), |r| format!("{r:.2}x")),
                );
            }
        }
        rows.push(cells);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|col| {
            rows.iter()
                .map(|r| r[col].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (cell, w) in row.iter().zip(&widths) {
            let _ = write!(line, "{cell:<w$}  ", w = *w);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    for (i, note) in notes.iter().enumerate() {
        let _ = writeln!(out, "[{}] {note}", i + 1);
    }
    out
}

// ---------------------------------------------------------------------------
// JSON (hand-written: the bench needs no serde)
// ---------------------------------------------------------------------------

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_num(x: Option<f64>, decimals: usize) -> String {
    x.filter(|x| x.is_finite())
        .map_or_else(|| "null".to_owned(), |x| format!("{x:.decimals$}"))
}

fn json(results: &[Vec<Outcome>]) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{{");
    let _ = writeln!(o, "  \"bench\": \"parse\",");
    let _ = writeln!(o, "  \"date\": {},", json_str(&utc_now()));
    let _ = writeln!(o, "  \"machine\": {{");
    let _ = writeln!(o, "    \"nproc\": {},", nproc());
    let _ = writeln!(o, "    \"cpu\": {},", json_str(&cpu_model()));
    let _ = writeln!(o, "    \"loadavg\": {}", json_str(&loadavg()));
    let _ = writeln!(o, "  }},");
    let _ = writeln!(
        o,
        "  \"method\": {{ \"batches\": {BATCHES}, \"batch_ms\": {}, \"warm_up_ms\": {}, \"statistic\": \"median ns per message\" }},",
        BATCH_TIME.as_millis(),
        WARM_UP.as_millis()
    );
    let names: Vec<String> = CONTENDERS.iter().map(|c| json_str(c.name)).collect();
    let _ = writeln!(o, "  \"contenders\": [{}],", names.join(", "));
    let _ = writeln!(o, "  \"messages\": [");
    for (m, (case, row)) in CASES.iter().zip(results).enumerate() {
        let _ = writeln!(o, "    {{");
        let _ = writeln!(o, "      \"name\": {},", json_str(case.name));
        let _ = writeln!(o, "      \"bytes\": {},", case.bytes.len());
        let _ = writeln!(o, "      \"results\": {{");
        for (i, (contender, outcome)) in CONTENDERS.iter().zip(row).enumerate() {
            let (ns, error) = match outcome {
                Ok(ns) => (json_num(Some(*ns), 1), "null".to_owned()),
                Err(why) => ("null".to_owned(), json_str(why)),
            };
            let comma = if i + 1 < CONTENDERS.len() { "," } else { "" };
            let _ = writeln!(
                o,
                "        {}: {{ \"median_ns\": {ns}, \"error\": {error} }}{comma}",
                json_str(contender.name)
            );
        }
        let _ = writeln!(o, "      }},");
        let _ = writeln!(o, "      \"ratios\": {{");
        let pairs: Vec<(usize, usize)> = (0..OURS)
            .flat_map(|ours| (OURS..CONTENDERS.len()).map(move |i| (ours, i)))
            .collect();
        for (n, &(ours, i)) in pairs.iter().enumerate() {
            let key = format!("{}/{}", CONTENDERS[i].name, CONTENDERS[ours].name);
            let comma = if n + 1 < pairs.len() { "," } else { "" };
            let _ = writeln!(
                o,
                "        {}: {}{comma}",
                json_str(&key),
                json_num(ratio(row, ours, i), 3)
            );
        }
        let _ = writeln!(o, "      }}");
        let comma = if m + 1 < CASES.len() { "," } else { "" };
        let _ = writeln!(o, "    }}{comma}");
    }
    let _ = writeln!(o, "  ]");
    let _ = writeln!(o, "}}");
    o
}

// ---------------------------------------------------------------------------
// Environment
// ---------------------------------------------------------------------------

/// `$CARGO_TARGET_DIR` (xtask passes it absolute), else `<workspace>/target`.
/// A relative `CARGO_TARGET_DIR` is taken relative to the workspace root.
fn target_dir() -> PathBuf {
    let workspace = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => workspace.join(dir),
        _ => workspace.join("target"),
    }
}

fn nproc() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `/proc/loadavg`'s first three fields: on a shared machine, read the
/// numbers with this in mind.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".to_owned())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// `2025-01-31T12:34:56Z`, from the system clock (civil-from-days, H. Hinnant).
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
