//! Choosing a device: selectors, and walking cpal's hosts in listing order.

use std::fmt;

use cpal::traits::{DeviceTrait, HostTrait};

use super::DeviceError;

/// Whether a device captures audio or plays it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    /// Capture (a microphone).
    Input,
    /// Playback (a speaker).
    Output,
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceKind::Input => "input",
            DeviceKind::Output => "output",
        })
    }
}

/// Which device to open.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DeviceSelector {
    /// The default device of the first host that has one.
    #[default]
    Default,
    /// The device with this index in [`list`](super::list)'s output (inputs and
    /// outputs are numbered separately, across all hosts).
    Index(usize),
    /// The first device whose name or backend id equals this string; failing
    /// that, the first whose name or id contains it, ignoring case.
    Name(String),
}

impl fmt::Display for DeviceSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSelector::Default => f.write_str("the default device"),
            DeviceSelector::Index(i) => write!(f, "index {i}"),
            DeviceSelector::Name(n) => write!(f, "name `{n}`"),
        }
    }
}

impl DeviceSelector {
    /// Parses what a user typed: `default`, a number (an index), or anything else (a name).
    pub fn parse(text: &str) -> DeviceSelector {
        let t = text.trim();
        if t.is_empty() || t.eq_ignore_ascii_case("default") {
            DeviceSelector::Default
        } else if let Ok(i) = t.parse::<usize>() {
            DeviceSelector::Index(i)
        } else {
            DeviceSelector::Name(t.to_owned())
        }
    }
}

/// One device met while walking the hosts.
pub(crate) struct Found {
    pub(crate) host: String,
    pub(crate) device: cpal::Device,
    pub(crate) name: String,
    pub(crate) id: String,
    pub(crate) is_default: bool,
}

/// A host's devices in one direction, or why they could not be listed.
pub(crate) struct HostWalk {
    pub(crate) host: String,
    pub(crate) devices: Vec<Found>,
    pub(crate) error: Option<String>,
}

/// Every host's devices in `direction`, in the order [`list`](super::list) numbers them.
pub(crate) fn walk(direction: DeviceKind) -> Vec<HostWalk> {
    let mut out = Vec::new();
    for host_id in cpal::available_hosts() {
        let host_name = host_id.to_string();
        let host = match cpal::host_from_id(host_id) {
            Ok(h) => h,
            Err(e) => {
                out.push(HostWalk {
                    host: host_name,
                    devices: Vec::new(),
                    error: Some(e.to_string()),
                });
                continue;
            }
        };
        let (devices, default) = match direction {
            DeviceKind::Input => (
                host.input_devices().map(|d| d.collect::<Vec<_>>()),
                host.default_input_device(),
            ),
            DeviceKind::Output => (
                host.output_devices().map(|d| d.collect::<Vec<_>>()),
                host.default_output_device(),
            ),
        };
        let default_id = default.as_ref().and_then(|d| d.id().ok());
        let mut error = None;
        let describe = |device: cpal::Device| {
            let id = device.id().ok();
            let name = device
                .description()
                .map(|d| d.name().to_owned())
                .ok()
                .or_else(|| id.as_ref().map(|i| i.id().to_owned()))
                .unwrap_or_else(|| "(unnamed)".to_owned());
            let is_default = id.is_some() && id == default_id;
            Found {
                host: host_name.clone(),
                device,
                name,
                id: id.map(|i| i.id().to_owned()).unwrap_or_default(),
                is_default,
            }
        };
        let mut found: Vec<Found> = Vec::new();
        match devices {
            Ok(devices) => found.extend(devices.into_iter().map(&describe)),
            Err(e) => error = Some(e.to_string()),
        }
        // ALSA lists only PCMs with a hint; a default defined in ~/.asoundrc has
        // none. List the host's default first when enumeration did not show it.
        if let Some(d) = default
            && default_id.is_some()
            && !found.iter().any(|f| f.is_default)
        {
            found.insert(0, describe(d));
        }
        out.push(HostWalk {
            host: host_name,
            devices: found,
            error,
        });
    }
    out
}

/// Finds the device `sel` designates.
pub(crate) fn find(direction: DeviceKind, sel: &DeviceSelector) -> Result<Found, DeviceError> {
    let all: Vec<Found> = walk(direction)
        .into_iter()
        .flat_map(|h| h.devices)
        .collect();
    let pick = match sel {
        DeviceSelector::Default => all.iter().position(|d| d.is_default),
        DeviceSelector::Index(i) => (*i < all.len()).then_some(*i),
        DeviceSelector::Name(wanted) => {
            let lower = wanted.to_lowercase();
            all.iter()
                .position(|d| d.name == *wanted || d.id == *wanted)
                .or_else(|| {
                    all.iter().position(|d| {
                        d.name.to_lowercase().contains(&lower)
                            || d.id.to_lowercase().contains(&lower)
                    })
                })
        }
    };
    match pick {
        Some(i) => {
            let mut all = all;
            Ok(all.swap_remove(i))
        }
        None => Err(DeviceError::NoSuchDevice {
            direction,
            wanted: sel.to_string(),
            available: all.iter().map(label).collect(),
        }),
    }
}

/// How a device is named in messages: its name, and its backend id when that differs.
pub(crate) fn label(d: &Found) -> String {
    if d.id.is_empty() || d.id == d.name {
        d.name.clone()
    } else {
        format!("{} ({})", d.name, d.id)
    }
}
