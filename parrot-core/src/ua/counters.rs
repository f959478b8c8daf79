//! What an endpoint counts, for overload decisions, leak checks and logs.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The counts the driver publishes after each turn of its loop and the
/// endpoint's handles read.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) transactions: AtomicUsize,
    pub(crate) server_transactions: AtomicUsize,
    pub(crate) dialogs: AtomicUsize,
    pub(crate) calls: AtomicUsize,
    pub(crate) panics: AtomicUsize,
    pub(crate) rejected_overload: AtomicUsize,
    pub(crate) rejected_media_late: AtomicUsize,
    pub(crate) rejected_media_room: AtomicUsize,
    pub(crate) auth_failures: AtomicUsize,
    pub(crate) auth_throttled: AtomicUsize,
}

impl Counters {
    /// A snapshot.
    pub(crate) fn snapshot(&self) -> EndpointStats {
        EndpointStats {
            transactions: self.transactions.load(Ordering::Relaxed),
            server_transactions: self.server_transactions.load(Ordering::Relaxed),
            dialogs: self.dialogs.load(Ordering::Relaxed),
            calls: self.calls.load(Ordering::Relaxed),
            panics: self.panics.load(Ordering::Relaxed),
            rejected_overload: self.rejected_overload.load(Ordering::Relaxed),
            rejected_media_late: self.rejected_media_late.load(Ordering::Relaxed),
            rejected_media_room: self.rejected_media_room.load(Ordering::Relaxed),
            auth_failures: self.auth_failures.load(Ordering::Relaxed),
            auth_throttled: self.auth_throttled.load(Ordering::Relaxed),
        }
    }

    /// Stores a snapshot taken from the UA core.
    pub(crate) fn publish(&self, s: &EndpointStats) {
        self.transactions.store(s.transactions, Ordering::Relaxed);
        self.server_transactions
            .store(s.server_transactions, Ordering::Relaxed);
        self.dialogs.store(s.dialogs, Ordering::Relaxed);
        self.calls.store(s.calls, Ordering::Relaxed);
        self.panics.store(s.panics, Ordering::Relaxed);
        self.rejected_overload
            .store(s.rejected_overload, Ordering::Relaxed);
        self.rejected_media_late
            .store(s.rejected_media_late, Ordering::Relaxed);
        self.rejected_media_room
            .store(s.rejected_media_room, Ordering::Relaxed);
        self.auth_failures.store(s.auth_failures, Ordering::Relaxed);
        self.auth_throttled
            .store(s.auth_throttled, Ordering::Relaxed);
    }
}

/// A snapshot of an endpoint's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointStats {
    /// Live transactions (client and server).
    pub transactions: usize,
    /// Live server transactions.
    pub server_transactions: usize,
    /// Live dialogs.
    pub dialogs: usize,
    /// Calls with a task or a handle.
    pub calls: usize,
    /// Handler panics contained so far.
    pub panics: usize,
    /// INVITEs refused with 503 and Retry-After for overload (or while
    /// shutting down): any of the endpoint's guards, the two below among them.
    pub rejected_overload: usize,
    /// Of them, refused while media pacing was behind ([`crate::media::pacing_behind`]).
    pub rejected_media_late: usize,
    /// Of them, refused (pacing not behind) because the calls in progress
    /// filled the media threads' room ([`crate::media::media_room`]).
    pub rejected_media_room: usize,
    /// INVITEs and REGISTERs whose digest failed (wrong password, unknown
    /// user, a nonce not ours ...); a request without credentials and a
    /// valid digest on an expired nonce do not count.
    pub auth_failures: usize,
    /// INVITEs and REGISTERs refused with 403 because their source failed to
    /// authenticate too often ([`EndpointBuilder::auth_throttle`](crate::ua::EndpointBuilder::auth_throttle)).
    pub auth_throttled: usize,
}
