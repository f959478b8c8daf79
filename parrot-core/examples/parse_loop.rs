//! Profiling aid: parse one message file N times with parrot (strict), lazy (parrot's parse_lazy) or rsipstack,
//! reading the typed values the parse benchmark reads. For callgrind/perf:
//! `cargo build --release -p parrot-core --example parse_loop` then
//! `valgrind --tool=callgrind target/release/examples/parse_loop FILE 20000 parrot`.
#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout)]

fn main() {
    let mut args = std::env::args().skip(1);
    let msg = std::fs::read(args.next().expect("FILE")).unwrap();
    let n: usize = args.next().map_or(1_000_000, |s| s.parse().unwrap());
    let who = args.next().unwrap_or_else(|| "parrot".to_owned());
    let t = std::time::Instant::now();
    let mut acc = 0usize;
    for _ in 0..n {
        if who == "rsipstack" {
            use rsipstack::sip::prelude::*;
            let m = rsipstack::sip::parser::parse_message(&msg).unwrap();
            let via = m.top_via_header().unwrap().typed().unwrap();
            acc += via.branch().map_or(0, |b| b.len());
            let from = m.from_header().unwrap().typed().unwrap();
            acc += from.tag().map_or(0, |t| t.len());
            let to = m.to_header().unwrap().typed().unwrap();
            acc += to.tag().map_or(0, |t| t.len());
            acc += m.call_id_header().unwrap().value().len();
            acc += m.cseq_header().unwrap().typed().unwrap().seq as usize;
        } else {
            let buf = bytes::Bytes::copy_from_slice(&msg);
            let m = if who == "lazy" {
                parrot_core::message::Message::parse_lazy(buf).unwrap()
            } else {
                parrot_core::message::Message::parse(buf).unwrap()
            };
            let h = m.headers();
            acc += h.top_via().and_then(|v| v.branch()).map_or(0, str::len);
            acc += h.from().and_then(|v| v.tag()).map_or(0, str::len);
            acc += h.to().and_then(|v| v.tag()).map_or(0, str::len);
            acc += h.call_id().map_or(0, |c| c.len());
            acc += h.cseq().map_or(0, |c| c.seq as usize);
        }
    }
    println!(
        "{who}: {:.0} ns/msg ({acc})",
        t.elapsed().as_nanos() as f64 / n as f64
    );
}
