//! Digits for async code: a [`MediaHandler`] wrapper that also hands every
//! DTMF digit to a [`Digits`] stream, so a task can collect a PIN (with a
//! terminator and an inter-digit timeout), await a lookup, and then tell the
//! call what to play through its [`CallHandle`](crate::ua::CallHandle),
//! without blocking the media session that drives the handler.

use super::handler::{Action, ErrorAction, MediaHandler, PlaySource};
use super::wav::MediaError;
use std::time::Duration;
use tokio::sync::mpsc;

/// How many digits wait for a reader; more are dropped (a reader that went
/// away must not make a caller's key presses grow memory).
const QUEUE: usize = 64;

/// A media handler that passes everything to `inner` and also sends each
/// DTMF digit to its [`Digits`].
pub struct Keypad<H> {
    inner: H,
    digits: mpsc::Sender<char>,
}

impl<H> std::fmt::Debug for Keypad<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keypad").finish_non_exhaustive()
    }
}

/// The digits a call's [`Keypad`] receives, in order.
#[derive(Debug)]
pub struct Digits {
    rx: mpsc::Receiver<char>,
}

/// Wraps `inner` so that its call's DTMF digits also reach the returned
/// [`Digits`]: a task can collect a PIN, await a lookup, and tell the call
/// what to play through its [`CallHandle`](crate::ua::CallHandle), without
/// blocking the media session that drives the handler.
///
/// ```no_run
/// # use parrot_core::media::{Action, keypad};
/// # use parrot_core::ua::{Incoming, Reply};
/// # use std::time::Duration;
/// # struct Prompt; impl parrot_core::media::MediaHandler for Prompt {}
/// async fn invite(call: &mut Incoming) -> Reply {
///     let (media, mut digits) = keypad(Prompt);
///     let Some(handle) = call.handle().cloned() else { return Reply::server_error() };
///     tokio::spawn(async move {
///         let pin = digits
///             .read(4, Some('#'), Duration::from_secs(10), Duration::from_secs(3))
///             .await;
///         let prompt = if pin.as_deref() == Some("1234") { "welcome.wav" } else { "denied.wav" };
///         let _ = handle.media_action(Action::play(prompt)).await;
///     });
///     call.answer(media).await
/// }
/// ```
pub fn keypad<H: MediaHandler>(inner: H) -> (Keypad<H>, Digits) {
    let (tx, rx) = mpsc::channel(QUEUE);
    (Keypad { inner, digits: tx }, Digits { rx })
}

impl Digits {
    /// The next digit, or `None` if none comes within `wait` (or the call's
    /// media is over).
    pub async fn next(&mut self, wait: Duration) -> Option<char> {
        tokio::time::timeout(wait, self.rx.recv())
            .await
            .ok()
            .flatten()
    }

    /// Reads digits until `terminator` (not included), `max` digits, or
    /// `inter_digit` without one; the first may take `first`. `None` if no
    /// digit came at all.
    pub async fn read(
        &mut self,
        max: usize,
        terminator: Option<char>,
        first: Duration,
        inter_digit: Duration,
    ) -> Option<String> {
        let mut got = String::new();
        let mut wait = first;
        while got.len() < max {
            let Some(d) = self.next(wait).await else {
                break;
            };
            if Some(d) == terminator {
                return Some(got);
            }
            got.push(d);
            wait = inter_digit;
        }
        (!got.is_empty()).then_some(got)
    }
}

impl<H: MediaHandler> MediaHandler for Keypad<H> {
    fn choose_codec(
        &mut self,
        offered: &[crate::codec::Codec],
        supported: &[crate::codec::Codec],
    ) -> Option<crate::codec::Codec> {
        self.inner.choose_codec(offered, supported)
    }
    fn session_started(&mut self) {
        self.inner.session_started();
    }
    fn stream_started(&mut self) -> Action {
        self.inner.stream_started()
    }
    fn play_complete(&mut self, played: &PlaySource) -> Action {
        self.inner.play_complete(played)
    }
    fn dtmf(&mut self, digit: char) -> Action {
        // Never waits: the media session must not.
        let _ = self.digits.try_send(digit);
        self.inner.dtmf(digit)
    }
    fn stream_error(&mut self, error: &MediaError) -> ErrorAction {
        self.inner.stream_error(error)
    }
    fn poll(&mut self) -> Action {
        self.inner.poll()
    }
    fn session_stopped(&mut self) {
        self.inner.session_stopped();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nothing;
    impl MediaHandler for Nothing {}

    #[tokio::test(start_paused = true)]
    async fn a_pin_ends_at_its_terminator_its_length_or_a_pause() {
        let (mut k, mut d) = keypad(Nothing);
        for c in "12#".chars() {
            k.dtmf(c);
        }
        let s = Duration::from_secs(1);
        assert_eq!(d.read(8, Some('#'), s, s).await.as_deref(), Some("12"));
        for c in "98765".chars() {
            k.dtmf(c);
        }
        assert_eq!(d.read(4, Some('#'), s, s).await.as_deref(), Some("9876"));
        // "5" is left; nothing follows it within the inter-digit time.
        assert_eq!(d.read(4, Some('#'), s, s).await.as_deref(), Some("5"));
        assert_eq!(d.read(4, Some('#'), s, s).await, None, "nothing at all");
    }
}
