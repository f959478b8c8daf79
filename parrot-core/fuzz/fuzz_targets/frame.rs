//! Stream framing on arbitrary bytes with a small max size: a complete message
//! or keep-alive must lie within the input and within the limit. When the framed
//! bytes also parse as a message, the parser must agree with the framer on the
//! body length (a disagreement would desynchronise a stream).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use parrot_core::message::{Framed, Message, frame};

const MAX: usize = 512;

fuzz_target!(|data: &[u8]| {
    match frame(data, MAX) {
        Ok(Framed::Message { len }) => {
            assert!(
                len <= data.len(),
                "Message len {len} > input len {}",
                data.len()
            );
            assert!(len <= MAX, "Message len {len} > max size {MAX}");
            let head_end = data
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .expect("a framed message has a blank line");
            let body_len = len - (head_end + 4);
            if let Ok(msg) = Message::parse(Bytes::copy_from_slice(&data[..len])) {
                assert_eq!(
                    msg.body().len(),
                    body_len,
                    "frame() and Message::parse disagree on the body length"
                );
            }
        }
        Ok(Framed::KeepAlive { len, .. }) => {
            assert!(
                len > 0 && len <= data.len(),
                "KeepAlive len {len} out of 1..={}",
                data.len()
            );
        }
        Ok(Framed::Incomplete) | Err(_) => {}
    }
});
