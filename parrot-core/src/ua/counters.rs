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
}
