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
    /// INVITEs refused with 503 because of the server-transaction cap.
    pub rejected_overload: usize,
    /// INVITEs and REGISTERs whose digest failed (wrong password, unknown
    /// user, a nonce not ours ...); a request without credentials and a
    /// valid digest on an expired nonce do not count.
    pub auth_failures: usize,
    /// INVITEs and REGISTERs refused with 403 because their source failed to
    /// authenticate too often ([`EndpointBuilder::auth_throttle`](crate::ua::EndpointBuilder::auth_throttle)).
    pub auth_throttled: usize,
}
