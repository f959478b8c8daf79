#![allow(missing_docs, clippy::unwrap_used)]
fn main() {
    let msg = std::fs::read(std::env::args().nth(1).unwrap()).unwrap();
    let n: usize = std::env::args()
        .nth(2)
        .map_or(1_000_000, |s| s.parse().unwrap());
    let t = std::time::Instant::now();
    let mut acc = 0usize;
    for _ in 0..n {
        let m = parrot_core::message::Message::parse(bytes::Bytes::copy_from_slice(&msg)).unwrap();
        acc += m
            .headers()
            .top_via()
            .and_then(|v| v.branch())
            .map_or(0, str::len);
        acc += m.headers().from().and_then(|v| v.tag()).map_or(0, str::len);
    }
    println!(
        "{:.0} ns/msg ({acc})",
        t.elapsed().as_nanos() as f64 / n as f64
    );
}
