//! Sound cards through [cpal](https://docs.rs/cpal) (feature `device`).
//!
//! - [`list`] enumerates every host cpal knows on this platform, with each
//!   input and output device, whether it is the default, and what it supports.
//!   A machine without audio hardware gives an empty list (or only ALSA's
//!   `null` device), never an error or a panic.
//! - [`open_input`] and [`open_output`] pick a device with a [`DeviceSelector`]
//!   and a configuration it supports, and start a stream.
//! - A [`Microphone`] is an [`AudioSource`](crate::media::AudioSource): the
//!   device's samples are mixed down to mono, resampled to 8 kHz and queued in
//!   a bounded ring (200 ms) that [`read`](crate::media::AudioSource::read)
//!   drains. A [`Speaker`] takes 8 kHz frames, resamples them to the device's
//!   rate and queues them in a bounded ring that the device drains. An empty
//!   ring plays (or reads) silence; a full one drops its oldest samples, so the
//!   latency a device adds to a call never exceeds the bound. [`RingStats`]
//!   counts both.
//!
//! Each stream lives on a thread of its own that owns the `cpal::Stream`
//! (not `Send` on every host) and talks to the handle through the ring and a
//! stop flag, so [`Microphone`] and [`Speaker`] are `Send`. Dropping the
//! handle stops the stream and joins the thread.
//!
//! alsa-lib's own complaints while probing (`ALSA lib confmisc.c:855:(parse_card)
//! cannot find card '0'`... on a machine without a sound card) do not reach
//! stderr: they are logged with `tracing` at `debug` level, target
//! `parrot_core::device::alsa` (`RUST_LOG=parrot_core::device::alsa=debug`).

mod alsa_log;
mod error;
mod list;
mod ring;
mod select;
mod stream;

pub use error::DeviceError;
pub use list::{ConfigRange, DeviceInfo, DeviceList, HostDevices, list};
pub use ring::RingStats;
pub use select::{DeviceKind, DeviceSelector};
pub use stream::{Microphone, Speaker, StreamInfo, open_input, open_output};

/// How much audio a [`Microphone`] or [`Speaker`] ring holds at most, in milliseconds.
pub const RING_MS: u32 = 200;
