//! alsa-lib's diagnostics go to `tracing`, not to stderr.
//!
//! alsa-lib prints every error it meets while evaluating its configuration
//! straight to stderr (`ALSA lib confmisc.c:855:(parse_card) cannot find card
//! '0'` and a dozen lines more each time the `default` PCM is probed on a
//! machine without a sound card), even when the caller handles the failure, as
//! cpal does. [`AlsaLog`] installs alsa-lib's thread-local error handler
//! (`snd_lib_error_set_local`, through the `alsa` crate's safe
//! `Output::local_error_handler`), which formats each message into a buffer
//! instead; [`AlsaLog::flush`] and dropping it log the buffered lines at
//! `debug` level, target `parrot_core::device::alsa`.
//!
//! The handler is per thread. This module only calls into cpal on threads of
//! its own: [`list`](super::list) enumerates on a short-lived thread, and a
//! stream is found, opened and held on its stream thread; each installs an
//! `AlsaLog` first. (cpal's own worker thread for a running ALSA stream keeps
//! alsa-lib's default handler: reaching it would need the process-wide
//! `snd_lib_error_set_handler`, whose handler is a C variadic function that
//! stable Rust cannot define.)

#[cfg(any(
    target_os = "linux",
    target_os = "dragonfly",
    target_os = "freebsd",
    target_os = "netbsd"
))]
mod imp {
    use std::cell::RefCell;
    use std::rc::Rc;

    /// The thread's alsa-lib messages, buffered until [`flush`](Self::flush) or drop.
    pub(crate) struct AlsaLog(Option<Rc<RefCell<alsa::Output>>>);

    impl AlsaLog {
        /// Routes this thread's alsa-lib messages into a fresh buffer.
        pub(crate) fn install() -> AlsaLog {
            match alsa::Output::local_error_handler() {
                Ok(out) => AlsaLog(Some(out)),
                Err(e) => {
                    tracing::debug!(target: "parrot_core::device::alsa", "cannot capture alsa-lib messages: {e}");
                    AlsaLog(None)
                }
            }
        }

        /// Logs what alsa-lib said since the last flush, and starts a fresh buffer.
        pub(crate) fn flush(&mut self) {
            if let Some(out) = self.0.take() {
                // A new buffer replaces the old one before the old one is read.
                *self = AlsaLog::install();
                log(&out);
            }
        }
    }

    impl Drop for AlsaLog {
        fn drop(&mut self) {
            if let Some(out) = self.0.take() {
                log(&out);
            }
        }
    }

    fn log(out: &RefCell<alsa::Output>) {
        let text = out.borrow().to_string();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            tracing::debug!(target: "parrot_core::device::alsa", "{line}");
        }
    }
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "dragonfly",
    target_os = "freebsd",
    target_os = "netbsd"
)))]
mod imp {
    /// No ALSA on this platform: nothing to capture.
    pub(crate) struct AlsaLog;

    impl AlsaLog {
        pub(crate) fn install() -> AlsaLog {
            AlsaLog
        }

        pub(crate) fn flush(&mut self) {}
    }
}

pub(crate) use imp::AlsaLog;
