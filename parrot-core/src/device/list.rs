//! Enumeration: hosts, devices, supported configurations; a table and JSON.

use std::fmt::{self, Write as _};

use cpal::traits::DeviceTrait;

use super::DeviceError;
use super::alsa_log::AlsaLog;
use super::select::{DeviceKind, Found, walk};

/// Everything [`list`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceList {
    /// One entry per host cpal found available, in cpal's order.
    pub hosts: Vec<HostDevices>,
}

/// One audio host (ALSA, JACK, CoreAudio, WASAPI...) and its devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDevices {
    /// The host's name in lower case (`alsa`).
    pub host: String,
    /// Its capture devices.
    pub inputs: Vec<DeviceInfo>,
    /// Its playback devices.
    pub outputs: Vec<DeviceInfo>,
    /// Why the host or part of its devices could not be listed, if so.
    pub error: Option<String>,
}

/// One device in one direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Its number for [`DeviceSelector::Index`](super::DeviceSelector::Index):
    /// inputs and outputs are numbered separately, from 0, across all hosts.
    /// Stable within one listing; devices that come and go renumber the rest.
    pub index: usize,
    /// The host it belongs to.
    pub host: String,
    /// Its human-readable name.
    pub name: String,
    /// The backend's identifier (the ALSA PCM name, such as `null` or `hw:CARD=0,DEV=0`).
    pub id: String,
    /// Whether it is the host's default device in this direction.
    pub is_default: bool,
    /// What it supports; empty when the device could not be queried (see `config_error`).
    pub configs: Vec<ConfigRange>,
    /// Why the configurations could not be queried (busy, unplugged, no card behind it).
    pub config_error: Option<String>,
}

/// A range of stream configurations a device supports: every channel count
/// from `min_channels` to `max_channels`, each at any rate in the range and in
/// any of the formats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigRange {
    /// Fewest channels.
    pub min_channels: u16,
    /// Most channels.
    pub max_channels: u16,
    /// Lowest sample rate, Hz.
    pub min_rate: u32,
    /// Highest sample rate, Hz.
    pub max_rate: u32,
    /// Sample formats at this channel count and rate range (`i16`, `f32`...).
    pub formats: Vec<String>,
}

/// Lists every available host with its input and output devices.
///
/// Never fails because a machine has no audio hardware: such a machine gives
/// an empty list or only virtual devices (ALSA's `null`). A device whose
/// configurations cannot be read is still listed, with `config_error` set.
pub fn list() -> Result<DeviceList, DeviceError> {
    // On a thread of its own, so that alsa-lib's thread-local error handler
    // (see `alsa_log`) ends with it.
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("parrot-audio-list".to_owned())
            .spawn_scoped(s, || {
                let _alsa = AlsaLog::install();
                list_here()
            })
            .map_err(|e| DeviceError::Backend(format!("cannot start the listing thread: {e}")))?
            .join()
            .map_err(|_| DeviceError::Backend("the device listing panicked".to_owned()))
    })
}

fn list_here() -> DeviceList {
    let inputs = walk(DeviceKind::Input);
    let outputs = walk(DeviceKind::Output);
    let mut hosts: Vec<HostDevices> = Vec::new();
    let (mut next_in, mut next_out) = (0usize, 0usize);
    for (dir, walks) in [(DeviceKind::Input, inputs), (DeviceKind::Output, outputs)] {
        for w in walks {
            let pos = match hosts.iter().position(|h| h.host == w.host) {
                Some(p) => p,
                None => {
                    hosts.push(HostDevices {
                        host: w.host.clone(),
                        inputs: Vec::new(),
                        outputs: Vec::new(),
                        error: None,
                    });
                    hosts.len() - 1
                }
            };
            let entry = &mut hosts[pos];
            if let Some(e) = w.error {
                entry.error = Some(match entry.error.take() {
                    Some(prev) if prev != e => format!("{prev}; {e}"),
                    _ => e,
                });
            }
            for found in &w.devices {
                let counter = match dir {
                    DeviceKind::Input => &mut next_in,
                    DeviceKind::Output => &mut next_out,
                };
                let info = describe(found, dir, *counter);
                *counter += 1;
                match dir {
                    DeviceKind::Input => entry.inputs.push(info),
                    DeviceKind::Output => entry.outputs.push(info),
                }
            }
        }
    }
    DeviceList { hosts }
}

fn describe(found: &Found, dir: DeviceKind, index: usize) -> DeviceInfo {
    let ranges = match dir {
        DeviceKind::Input => found
            .device
            .supported_input_configs()
            .map(|c| c.collect::<Vec<_>>()),
        DeviceKind::Output => found
            .device
            .supported_output_configs()
            .map(|c| c.collect::<Vec<_>>()),
    };
    let (configs, config_error) = match ranges {
        Ok(ranges) => {
            let mut configs: Vec<ConfigRange> = Vec::new();
            for r in ranges {
                let format = r.sample_format().to_string();
                match configs.iter_mut().find(|c| {
                    c.min_channels == r.channels()
                        && c.min_rate == r.min_sample_rate()
                        && c.max_rate == r.max_sample_rate()
                }) {
                    Some(c) => {
                        if !c.formats.contains(&format) {
                            c.formats.push(format);
                        }
                    }
                    None => configs.push(ConfigRange {
                        min_channels: r.channels(),
                        max_channels: r.channels(),
                        min_rate: r.min_sample_rate(),
                        max_rate: r.max_sample_rate(),
                        formats: vec![format],
                    }),
                }
            }
            // Join consecutive channel counts that share rates and formats.
            let mut merged: Vec<ConfigRange> = Vec::new();
            for c in configs {
                match merged.last_mut() {
                    Some(m)
                        if m.max_channels.checked_add(1) == Some(c.min_channels)
                            && m.min_rate == c.min_rate
                            && m.max_rate == c.max_rate
                            && m.formats == c.formats =>
                    {
                        m.max_channels = c.max_channels;
                    }
                    _ => merged.push(c),
                }
            }
            (merged, None)
        }
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    DeviceInfo {
        index,
        host: found.host.clone(),
        name: found.name.clone(),
        id: found.id.clone(),
        is_default: found.is_default,
        configs,
        config_error,
    }
}

impl DeviceList {
    /// True when no host has any device.
    pub fn is_empty(&self) -> bool {
        self.hosts
            .iter()
            .all(|h| h.inputs.is_empty() && h.outputs.is_empty())
    }

    /// All input devices, in index order.
    pub fn inputs(&self) -> impl Iterator<Item = &DeviceInfo> {
        self.hosts.iter().flat_map(|h| h.inputs.iter())
    }

    /// All output devices, in index order.
    pub fn outputs(&self) -> impl Iterator<Item = &DeviceInfo> {
        self.hosts.iter().flat_map(|h| h.outputs.iter())
    }

    /// The listing as a JSON object:
    /// `{"hosts":[{"host":"alsa","error":null,"inputs":[{"index":0,"name":..,
    /// "id":..,"default":true,"configs":[{"min_channels":1,"max_channels":2,"min_rate":..,"max_rate":..,
    /// "formats":["i16"]}],"config_error":null}],"outputs":[..]}]}`.
    pub fn to_json(&self) -> String {
        let mut s = String::from("{\"hosts\":[");
        for (i, h) in self.hosts.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str("{\"host\":");
            json_str(&mut s, &h.host);
            s.push_str(",\"error\":");
            json_opt(&mut s, h.error.as_deref());
            for (key, devices) in [("inputs", &h.inputs), ("outputs", &h.outputs)] {
                let _ = write!(s, ",\"{key}\":[");
                for (j, d) in devices.iter().enumerate() {
                    if j > 0 {
                        s.push(',');
                    }
                    device_json(&mut s, d);
                }
                s.push(']');
            }
            s.push('}');
        }
        s.push_str("]}");
        s
    }
}

fn device_json(s: &mut String, d: &DeviceInfo) {
    let _ = write!(s, "{{\"index\":{},\"name\":", d.index);
    json_str(s, &d.name);
    s.push_str(",\"id\":");
    json_str(s, &d.id);
    let _ = write!(s, ",\"default\":{},\"configs\":[", d.is_default);
    for (k, c) in d.configs.iter().enumerate() {
        if k > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            "{{\"min_channels\":{},\"max_channels\":{},\"min_rate\":{},\"max_rate\":{},\"formats\":[",
            c.min_channels, c.max_channels, c.min_rate, c.max_rate
        );
        for (m, f) in c.formats.iter().enumerate() {
            if m > 0 {
                s.push(',');
            }
            json_str(s, f);
        }
        s.push_str("]}");
    }
    s.push_str("],\"config_error\":");
    json_opt(s, d.config_error.as_deref());
    s.push('}');
}

fn json_opt(s: &mut String, v: Option<&str>) {
    match v {
        Some(v) => json_str(s, v),
        None => s.push_str("null"),
    }
}

/// Appends `v` as a JSON string literal (RFC 8259 §7 escapes).
fn json_str(s: &mut String, v: &str) {
    s.push('"');
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", u32::from(c));
            }
            c => s.push(c),
        }
    }
    s.push('"');
}

impl fmt::Display for DeviceList {
    /// A table per host and direction: index, default mark, name, id, configurations.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.hosts.is_empty() {
            return writeln!(f, "no audio hosts available on this machine");
        }
        for h in &self.hosts {
            writeln!(f, "host {}", h.host)?;
            if let Some(e) = &h.error {
                writeln!(f, "  error: {e}")?;
            }
            for (title, devices) in [("input", &h.inputs), ("output", &h.outputs)] {
                if devices.is_empty() {
                    writeln!(f, "  {title} devices: none")?;
                    continue;
                }
                writeln!(f, "  {title} devices:")?;
                writeln!(
                    f,
                    "    {:>5}  {:<7}  {:<24}  {:<40}  configs",
                    "index", "default", "id", "name"
                )?;
                for d in devices {
                    writeln!(
                        f,
                        "    {:>5}  {:<7}  {:<24}  {:<40}  {}",
                        d.index,
                        if d.is_default { "*" } else { "" },
                        d.id,
                        d.name,
                        summarize(d)
                    )?;
                }
            }
        }
        Ok(())
    }
}

/// `1-64 ch, 4000-4294967295 Hz, i16 f32` per range, joined by `; `.
fn summarize(d: &DeviceInfo) -> String {
    if let Some(e) = &d.config_error {
        return format!("(cannot query: {e})");
    }
    if d.configs.is_empty() {
        return "(none)".to_owned();
    }
    let parts: Vec<String> = d
        .configs
        .iter()
        .map(|c| {
            let chans = if c.min_channels == c.max_channels {
                format!("{}", c.min_channels)
            } else {
                format!("{}-{}", c.min_channels, c.max_channels)
            };
            let rates = if c.min_rate == c.max_rate {
                format!("{}", c.min_rate)
            } else {
                format!("{}-{}", c.min_rate, c.max_rate)
            };
            format!("{chans} ch, {rates} Hz, {}", c.formats.join(" "))
        })
        .collect();
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escapes_and_table_renders() {
        let list = DeviceList {
            hosts: vec![HostDevices {
                host: "alsa".into(),
                inputs: vec![],
                outputs: vec![DeviceInfo {
                    index: 0,
                    host: "alsa".into(),
                    name: "Card \"A\"\n\u{1}".into(),
                    id: "hw:0".into(),
                    is_default: true,
                    configs: vec![ConfigRange {
                        min_channels: 1,
                        max_channels: 2,
                        min_rate: 8000,
                        max_rate: 48000,
                        formats: vec!["i16".into(), "f32".into()],
                    }],
                    config_error: None,
                }],
                error: None,
            }],
        };
        assert_eq!(
            list.to_json(),
            "{\"hosts\":[{\"host\":\"alsa\",\"error\":null,\"inputs\":[],\"outputs\":[{\"index\":0,\
             \"name\":\"Card \\\"A\\\"\\n\\u0001\",\"id\":\"hw:0\",\"default\":true,\"configs\":[{\
             \"min_channels\":1,\"max_channels\":2,\"min_rate\":8000,\"max_rate\":48000,\
             \"formats\":[\"i16\",\"f32\"]}],\"config_error\":null}]}]}"
        );
        let table = list.to_string();
        assert!(table.contains("input devices: none"), "{table}");
        assert!(table.contains("1-2 ch, 8000-48000 Hz, i16 f32"), "{table}");
        assert!(!list.is_empty());
        assert!(DeviceList::default().to_string().contains("no audio hosts"));
    }
}
