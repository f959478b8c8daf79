//! The device layer's error type.

/// What can go wrong when listing or opening audio devices.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// No device matches the selector.
    #[error("no audio {direction} device matches {wanted}; {}", available_text(.available))]
    NoSuchDevice {
        /// `input` or `output`.
        direction: super::DeviceKind,
        /// The selector, as the user wrote it (`default`, `#3`, `"USB"`).
        wanted: String,
        /// The names of the devices that exist in that direction, in listing order.
        available: Vec<String>,
    },
    /// The device exists but another stream or program holds it.
    #[error("audio device `{device}` is busy: {detail}")]
    Busy {
        /// The device's name.
        device: String,
        /// What the backend said.
        detail: String,
    },
    /// The device supports no configuration this layer can use, or rejected the one chosen.
    #[error("audio device `{device}` has no usable configuration: {detail}")]
    Unsupported {
        /// The device's name.
        device: String,
        /// Why, in words.
        detail: String,
    },
    /// Any other failure of the audio backend (ALSA, CoreAudio, WASAPI...).
    #[error("audio backend: {0}")]
    Backend(String),
}

fn available_text(available: &[String]) -> String {
    if available.is_empty() {
        "there are none on this machine".to_owned()
    } else {
        let quoted: Vec<String> = available.iter().map(|n| format!("`{n}`")).collect();
        format!("available: {}", quoted.join(", "))
    }
}

impl DeviceError {
    /// Maps a cpal error met while working on `device`.
    pub(crate) fn from_cpal(device: &str, err: &cpal::Error) -> DeviceError {
        match err.kind() {
            cpal::ErrorKind::DeviceBusy => DeviceError::Busy {
                device: device.to_owned(),
                detail: err.to_string(),
            },
            cpal::ErrorKind::UnsupportedConfig | cpal::ErrorKind::UnsupportedOperation => {
                DeviceError::Unsupported {
                    device: device.to_owned(),
                    detail: err.to_string(),
                }
            }
            _ => DeviceError::Backend(format!("{device}: {err}")),
        }
    }
}
