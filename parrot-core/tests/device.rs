//! Audio devices on a machine without a sound card (feature `device`).
//!
//! Run with `cargo test -p parrot-core --features device`.
//!
//! The playback and capture tests need their own ALSA configuration, which ALSA
//! reads from `$HOME/.asoundrc`. `HOME` is process-global, and setting it from
//! a test needs `unsafe` (forbidden in this workspace) and would race with the
//! other tests. So each of those tests re-runs this test binary as a child
//! process, filtered to itself, with `HOME` pointing at a fresh temporary
//! directory that holds the `.asoundrc`; the child does the device work and the
//! parent checks the files it left. Every child has its own directory, so the
//! tests may run in parallel.
//!
//! The ALSA configuration (see `asoundrc` below): the default PCM is an `asym`.
//!
//! - Playback is `plug` -> `file` (format `wav`, written to a path) -> `null`.
//!   The `plug`'s slave fixes S16_LE, 8000 Hz, 1 channel at the `file`
//!   plugin, so the WAV is 8 kHz mono whatever cpal opens the device with
//!   (48 kHz here), and ALSA's `plug` does that conversion.
//! - Capture is `file` (with `infile`, raw) -> `null`, with no `plug` above
//!   it. With `plug` -> `file` -> `null` (what design.md §5 suggests) alsa-lib
//!   1.2.8 reads the infile through the `file` plugin's mmap path, and what
//!   arrives is one short stretch of the infile over and over (measured: a
//!   "440 Hz" infile came out as a repeating 800-sample block peaking near
//!   460 Hz, with a discontinuity in it). Opened directly, cpal reads the
//!   `file` plugin with `snd_pcm_readi`, whose infile path is sound; but then
//!   the infile must be in the format the stream is opened with: this layer's
//!   choice for that device, i16 mono at the device's default rate, which cpal
//!   reports as 48 kHz for a `null`-backed PCM. The test writes a 48 kHz raw
//!   S16_LE infile and the child asserts that configuration before reading, so
//!   the microphone's own 48 kHz -> 8 kHz resampling is exercised too.
//!
//! `null` is not paced by a clock: streams on it run as fast as the CPU
//! allows, so the tests count samples, never seconds.

#![cfg(feature = "device")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use parrot_core::device::{self, DeviceError, DeviceKind, DeviceSelector};
use parrot_core::media::{AudioSource, Tone, tone_present};

/// Set in the child process: the test body does the device work.
const CHILD: &str = "PARROT_DEVICE_TEST_CHILD";

fn is_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

/// A fresh directory for one test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("parrot-device-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// The `.asoundrc` for the tests: see the module documentation.
fn asoundrc(wav_out: &Path, raw_in: &Path) -> String {
    format!(
        r#"# Written by parrot-core/tests/device.rs
pcm.!default {{
    type asym
    playback.pcm "parrot_playback"
    capture.pcm "parrot_capture_file"
}}
pcm.parrot_playback {{
    type plug
    slave {{
        pcm "parrot_playback_file"
        format S16_LE
        rate 8000
        channels 1
    }}
}}
pcm.parrot_playback_file {{
    type file
    slave.pcm "null"
    file "{wav}"
    format "wav"
}}
pcm.parrot_capture_file {{
    type file
    slave.pcm "null"
    file "/dev/null"
    infile "{raw}"
    format "raw"
}}
"#,
        wav = wav_out.display(),
        raw = raw_in.display()
    )
}

/// Runs the test `name` of this binary in a child process with `HOME=home`,
/// passing its output through, and asserts that it passed.
fn run_child(name: &str, home: &Path) {
    let exe = std::env::current_exe().expect("current exe");
    let out = Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("ALSA_CONFIG_PATH")
        .env(CHILD, "1")
        .output()
        .expect("run the child test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("--- child `{name}` stdout:\n{stdout}\n--- child stderr:\n{stderr}");
    assert!(
        out.status.success(),
        "child `{name}` failed: {}",
        out.status
    );
    // A filter that matched nothing also exits 0: make sure the test ran.
    assert!(stdout.contains("1 passed"), "child `{name}` did not run");
}

/// The samples of a WAV file the ALSA `file` plugin wrote (16-bit mono). The
/// plugin writes the header when the stream starts and may leave the sizes
/// unset if the stream is not closed cleanly, so the data chunk is taken to
/// run to the end of the file rather than trusting its declared length.
fn wav_samples(path: &Path) -> (u32, u16, Vec<i16>) {
    let bytes = std::fs::read(path).expect("read the WAV the file plugin wrote");
    assert!(
        bytes.len() >= 44,
        "{} is too short for a WAV",
        path.display()
    );
    assert_eq!(&bytes[0..4], b"RIFF");
    assert_eq!(&bytes[8..12], b"WAVE");
    let mut pos = 12;
    let (mut rate, mut channels, mut bits) = (0u32, 0u16, 0u16);
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let len = u32::from_le_bytes([
            bytes[pos + 4],
            bytes[pos + 5],
            bytes[pos + 6],
            bytes[pos + 7],
        ]) as usize;
        let body = pos + 8;
        if id == b"fmt " {
            channels = u16::from_le_bytes([bytes[body + 2], bytes[body + 3]]);
            rate = u32::from_le_bytes([
                bytes[body + 4],
                bytes[body + 5],
                bytes[body + 6],
                bytes[body + 7],
            ]);
            bits = u16::from_le_bytes([bytes[body + 14], bytes[body + 15]]);
        } else if id == b"data" {
            assert_eq!(bits, 16, "16-bit samples expected");
            let samples = bytes[body..]
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect();
            return (rate, channels, samples);
        }
        pos = body + len + (len & 1);
    }
    panic!("{}: no data chunk", path.display());
}

/// Splits `samples` into the stretches between silences (8 or more samples in
/// a row below 64 in magnitude; a 1 kHz or 440 Hz tone at half scale sampled
/// at 8 kHz never has that many).
fn sounding_segments(samples: &[i16]) -> Vec<&[i16]> {
    let mut segments = Vec::new();
    let mut start = None;
    let mut quiet = 0usize;
    for (i, &s) in samples.iter().enumerate() {
        if s.unsigned_abs() < 64 {
            quiet += 1;
            if quiet == 8
                && let Some(st) = start.take()
            {
                segments.push(&samples[st..i + 1 - 8]);
            }
        } else {
            quiet = 0;
            if start.is_none() {
                start = Some(i);
            }
        }
    }
    if let Some(st) = start {
        segments.push(&samples[st..samples.len() - quiet]);
    }
    segments
}

/// The handles cross threads (a call's media task): checked at compile time.
const _: () = {
    const fn send<T: Send>() {}
    send::<device::Microphone>();
    send::<device::Speaker>();
};

#[test]
fn enumeration_succeeds_without_a_sound_card() {
    if is_child() {
        return;
    }
    let list = device::list().expect("listing must succeed without audio hardware");
    println!("{list}");
    let json = list.to_json();
    println!("{json}");
    assert!(json.starts_with("{\"hosts\":[") && json.ends_with("]}"));
    for (i, d) in list.inputs().enumerate() {
        assert_eq!(d.index, i, "input indices run from 0 in listing order");
    }
    for (i, d) in list.outputs().enumerate() {
        assert_eq!(d.index, i, "output indices run from 0 in listing order");
    }
    if list.is_empty() {
        println!("no audio devices on this machine (no host lists any)");
        return;
    }
    if cfg!(target_os = "linux") && list.hosts.iter().any(|h| h.host == "alsa") {
        // alsa-lib always defines `null`, and it has a hint, so it is listed.
        let null = list
            .outputs()
            .find(|d| d.id == "null")
            .expect("ALSA lists its `null` device");
        assert!(
            null.configs
                .iter()
                .any(|c| c.formats.iter().any(|f| f == "i16")),
            "null accepts i16: {null:?}"
        );
        assert!(list.inputs().any(|d| d.id == "null"));
    }
}

#[test]
fn unknown_devices_are_reported_with_what_exists() {
    if is_child() {
        return;
    }
    let list = device::list().expect("list");
    let outputs: Vec<String> = list.outputs().map(|d| d.name.clone()).collect();
    match device::open_output(DeviceSelector::Name("no such speaker 42".into())) {
        Err(DeviceError::NoSuchDevice {
            direction,
            wanted,
            available,
        }) => {
            assert_eq!(direction, DeviceKind::Output);
            assert!(wanted.contains("no such speaker 42"));
            assert_eq!(available.len(), outputs.len());
            for (label, name) in available.iter().zip(&outputs) {
                assert!(label.starts_with(name.as_str()), "{label} vs {name}");
            }
            let err = DeviceError::NoSuchDevice {
                direction,
                wanted,
                available,
            };
            println!("{err}");
            if outputs.is_empty() {
                assert!(err.to_string().contains("there are none"));
            } else if list.outputs().any(|d| d.id == "null") {
                assert!(err.to_string().contains("(null)"), "{err}");
            }
        }
        other => panic!("expected NoSuchDevice, got {other:?}"),
    }
    let past_the_end = list.inputs().count() + 1000;
    match device::open_input(DeviceSelector::Index(past_the_end)) {
        Err(DeviceError::NoSuchDevice {
            direction, wanted, ..
        }) => {
            assert_eq!(direction, DeviceKind::Input);
            assert_eq!(wanted, format!("index {past_the_end}"));
        }
        other => panic!("expected NoSuchDevice, got {other:?}"),
    }
    assert_eq!(DeviceSelector::parse("default"), DeviceSelector::Default);
    assert_eq!(DeviceSelector::parse(" 3 "), DeviceSelector::Index(3));
    assert_eq!(
        DeviceSelector::parse("USB"),
        DeviceSelector::Name("USB".into())
    );
}

/// Samples of 1 kHz tone written through the speaker.
const PLAYED: usize = 8000;

#[test]
fn speaker_plays_into_the_alsa_file_plugin() {
    if !is_child() {
        let dir = temp_dir("playback");
        let wav = dir.join("played.wav");
        let rc = asoundrc(&wav, &dir.join("unused.raw"));
        std::fs::write(dir.join("unused.raw"), []).expect("write");
        std::fs::write(dir.join(".asoundrc"), rc).expect("write .asoundrc");
        run_child("speaker_plays_into_the_alsa_file_plugin", &dir);

        let (rate, channels, samples) = wav_samples(&wav);
        assert_eq!(
            (rate, channels),
            (8000, 1),
            "the plug's slave fixes 8 kHz mono"
        );
        let segments = sounding_segments(&samples);
        let sounding: usize = segments.iter().map(|s| s.len()).sum();
        let tone: usize = segments
            .iter()
            .filter(|s| s.len() >= 40 && tone_present(s, 1000.0, 8000, 0.8))
            .map(|s| s.len())
            .sum();
        println!(
            "WAV: {} samples, {} sounding in {} segments, {} of them 1 kHz",
            samples.len(),
            sounding,
            segments.len(),
            tone
        );
        // Everything written comes out (give or take resampler edges), all of it the tone.
        assert!(
            (PLAYED * 95 / 100..=PLAYED * 105 / 100).contains(&sounding),
            "{sounding} sounding samples for {PLAYED} written"
        );
        assert!(
            tone >= sounding * 95 / 100,
            "{tone} of {sounding} are the tone"
        );
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }

    // In the child: HOME holds the .asoundrc.
    let list = device::list().expect("list");
    println!("{list}");
    assert!(
        list.outputs().any(|d| d.is_default && d.id == "default"),
        "the .asoundrc default is listed as the default output"
    );
    let mut speaker =
        device::open_output(DeviceSelector::Default).expect("open the default output");
    println!("opened {:?}", speaker.info());
    let mut tone = Tone::new(1000.0, 0.5).lasting(PLAYED as f64 / 8000.0);
    let mut frame = [0i16; 160];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = tone.read(&mut frame);
        if n == 0 {
            break;
        }
        // Keep the queue under half its bound so nothing is dropped; the device
        // is not paced, so this waits for the callback, not for a clock.
        while speaker.queued() > speaker.capacity() / 2 {
            assert!(Instant::now() < deadline, "the device stopped draining");
            std::thread::sleep(Duration::from_millis(1));
        }
        speaker.write(&frame[..n]);
    }
    while speaker.queued() > Duration::ZERO {
        assert!(Instant::now() < deadline, "the device stopped draining");
        std::thread::sleep(Duration::from_millis(1));
    }
    let stats = speaker.stats();
    println!("speaker stats: {stats:?}");
    assert_eq!(stats.overruns, 0, "nothing was dropped");
    assert_eq!(stats.popped, stats.pushed, "the device took everything");
    drop(speaker); // stops the stream and closes the file
}

/// The rate the capture stream is opened at, so the rate of the raw infile.
const CAPTURE_RATE: u32 = 48_000;

#[test]
fn microphone_reads_the_alsa_file_plugin() {
    if !is_child() {
        let dir = temp_dir("capture");
        // 20 s of 440 Hz at 48 kHz, raw S16_LE mono (see the module docs for
        // why 48 kHz): capture runs unpaced, and a long input leaves the reader
        // time to see it before it ends.
        let raw: Vec<u8> = (0..CAPTURE_RATE as usize * 20)
            .map(|i| {
                let t = i as f64 / f64::from(CAPTURE_RATE);
                ((std::f64::consts::TAU * 440.0 * t).sin() * 16000.0).round() as i16
            })
            .flat_map(|s| s.to_le_bytes())
            .collect();
        let infile = dir.join("tone440.raw");
        std::fs::write(&infile, raw).expect("write the infile");
        let rc = asoundrc(&dir.join("unused.wav"), &infile);
        std::fs::write(dir.join(".asoundrc"), rc).expect("write .asoundrc");
        run_child("microphone_reads_the_alsa_file_plugin", &dir);
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }

    let mut mic = device::open_input(DeviceSelector::Default).expect("open the default input");
    println!("opened {:?}", mic.info());
    let info = mic.info();
    assert_eq!(
        (info.rate, info.channels, info.format.as_str()),
        (CAPTURE_RATE, 1, "i16"),
        "the infile was written for i16 mono at {CAPTURE_RATE} Hz"
    );
    let mut block = vec![0i16; 800];
    let (mut tone_blocks, mut other_blocks, mut read) = (0usize, 0usize, 0usize);
    let deadline = Instant::now() + Duration::from_secs(60);
    while tone_blocks < 20 && Instant::now() < deadline {
        if mic.available() < block.len() {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        assert_eq!(mic.read(&mut block), block.len());
        read += block.len();
        // Skip the resampler's start-up transient.
        if read <= 1600 {
            continue;
        }
        if tone_present(&block, 440.0, 8000, 0.9) {
            assert!(!tone_present(&block, 1000.0, 8000, 0.05));
            tone_blocks += 1;
        } else if block.iter().any(|&s| s != 0) {
            other_blocks += 1;
        }
    }
    let stats = mic.stats();
    println!(
        "read {read} samples: {tone_blocks} blocks of 800 with the 440 Hz tone, {other_blocks} other non-silent; {stats:?}"
    );
    assert!(
        tone_blocks >= 20,
        "the microphone delivers the infile's tone"
    );
    assert!(other_blocks <= 2, "no other sound");
}
