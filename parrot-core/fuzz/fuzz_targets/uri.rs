//! URI parsing on arbitrary UTF-8: a parsed URI must print to a string that
//! parses again to an equal URI, and printing that must be stable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parrot_core::message::Uri;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Some(uri) = Uri::parse(s) else {
        return;
    };
    let _ = (uri.scheme(), uri.user(), uri.host(), uri.as_sip());
    let printed = uri.to_string();
    let again = match Uri::parse(&printed) {
        Some(u) => u,
        None => panic!("printed URI does not parse again: input {s:?}, printed {printed:?}"),
    };
    assert_eq!(
        uri, again,
        "URI differs after round trip: input {s:?}, printed {printed:?}"
    );
    assert_eq!(again.to_string(), printed, "URI printing is not stable");
});
