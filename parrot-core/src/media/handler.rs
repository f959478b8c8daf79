//! The `MediaHandler` trait (what a call does with its audio) and the engine
//! that drives it, frame by frame, without touching the network.

use super::resample::Resampler;
use super::source::{AudioSource, LiveSink, LiveSource, Silence};
use super::tone::Tone;
use super::wav::{MediaError, WavRecorder, WavSource};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

/// Something to play.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PlaySource {
    /// A WAV file (any PCM format; converted to mono at the call's rate).
    File(PathBuf),
    /// A sine tone: frequency in Hz, duration in seconds.
    Tone(f64, f64),
    /// Silence, in seconds.
    Silence(f64),
    /// A live source (a microphone), until replaced or stopped.
    Live(LiveSource),
}

/// How to play it.
#[derive(Debug, Clone, PartialEq)]
pub struct Play {
    /// What.
    pub source: PlaySource,
    /// Start again at the end, until something else is played or stopped.
    pub looped: bool,
    /// Gain, 1.0 = as is.
    pub volume: f32,
}

/// What a handler asks for in answer to a media event.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Action {
    /// Nothing more.
    Nothing,
    /// Play this (replacing what plays now).
    Play(Play),
    /// Stop playing (silence is sent).
    StopPlaying,
    /// Record what the call receives into this WAV file (mono, at the call's rate: 8 kHz
    /// for G.711, 16 kHz for G.722).
    Record(PathBuf),
    /// Record both directions into this WAV file (stereo, at the call's rate): left what
    /// the call receives (the other party), right what it sends (this side).
    /// Stopped by [`Action::StopRecording`] too.
    RecordBoth(PathBuf),
    /// Stop recording and close the file.
    StopRecording,
    /// Also send what the call receives to this sink (a speaker), until replaced; resampled
    /// to the sink's rate.
    Listen(LiveSink),
    /// Stop sending received audio to the sink.
    StopListening,
    /// Send these DTMF digits (RFC 4733), in order.
    SendDtmf(String),
    /// Hang up the call.
    Hangup,
    /// Stop the media session but keep the call.
    Stop,
    /// Several actions, in order.
    Several(Vec<Action>),
}

impl Action {
    /// Play a WAV file once.
    pub fn play(path: impl AsRef<Path>) -> Action {
        Action::Play(Play {
            source: PlaySource::File(path.as_ref().to_path_buf()),
            looped: false,
            volume: 1.0,
        })
    }

    /// Play a WAV file over and over.
    pub fn play_looped(path: impl AsRef<Path>) -> Action {
        Action::Play(Play {
            source: PlaySource::File(path.as_ref().to_path_buf()),
            looped: true,
            volume: 1.0,
        })
    }

    /// Play from a live source (a microphone) until something else is played; resampled
    /// from the source's rate to the call's.
    pub fn play_live(source: LiveSource) -> Action {
        Action::Play(Play {
            source: PlaySource::Live(source),
            looped: false,
            volume: 1.0,
        })
    }

    /// Play a tone.
    pub fn tone(frequency: f64, seconds: f64) -> Action {
        Action::Play(Play {
            source: PlaySource::Tone(frequency, seconds),
            looped: false,
            volume: 1.0,
        })
    }

    /// This action and `next`, both taking effect now, in that order. Not a
    /// sequence in time: each action replaces what it controls, so
    /// `play(a).also(play(b))` plays only `b` (a play replaces a play), while
    /// `Record(f).also(play(a))` records and plays. To play `b` after `a`,
    /// answer `play(b)` from [`MediaHandler::play_complete`].
    pub fn also(self, next: Action) -> Action {
        match self {
            Action::Several(mut v) => {
                v.push(next);
                Action::Several(v)
            }
            Action::Nothing => next,
            a => Action::Several(vec![a, next]),
        }
    }

    /// The old name of [`Action::also`]: both actions take effect now, not
    /// one after the other.
    #[deprecated(
        since = "0.1.0",
        note = "reads as a sequence but means \"also, now\" (`play(a).then(play(b))` plays only b); use `Action::also`"
    )]
    pub fn then(self, next: Action) -> Action {
        self.also(next)
    }
}

/// What to do after a stream error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorAction {
    /// Try the failed action once more.
    Retry,
    /// Carry on without it (silence instead of the file).
    Continue,
    /// Stop the media session.
    Stop,
}

/// What a call does with its audio. One value per call; every method has a
/// default, so an implementation says only what differs. A call can be driven
/// by these callbacks alone (an IVR menu):
///
/// ```
/// use parrot_core::media::{Action, MediaHandler, PlaySource};
///
/// struct Menu;
/// impl MediaHandler for Menu {
///     fn stream_started(&mut self) -> Action { Action::play("welcome.wav") }
///     fn play_complete(&mut self, played: &PlaySource) -> Action {
///         match played {
///             PlaySource::File(f) if f.ends_with("welcome.wav") => Action::play("menu.wav"),
///             _ => Action::Nothing,
///         }
///     }
///     fn dtmf(&mut self, digit: char) -> Action {
///         match digit {
///             '1' => Action::tone(440.0, 1.0),
///             '9' => Action::Hangup,
///             _ => Action::play("menu.wav"),
///         }
///     }
/// }
/// ```
pub trait MediaHandler: Send + 'static {
    /// Picks the codec from the offered ones (in the offer's order) and ours (in
    /// preference order); `None` refuses the call's audio (488). Default: the
    /// first offered codec we support.
    fn choose_codec(
        &mut self,
        offered: &[crate::codec::Codec],
        supported: &[crate::codec::Codec],
    ) -> Option<crate::codec::Codec> {
        crate::sdp::default_choice(offered, supported)
    }

    /// The codecs this call offers (a call we place) and accepts (a call we answer), most
    /// preferred first. Default: [`codec::supported`](crate::codec::supported), G.722 then
    /// G.711. A handler that wants narrowband only (to save CPU on a busy server) or L16 on a
    /// local link (`Codec::new("L16", 16000, 96)`) says so here.
    fn codecs(&self) -> Vec<crate::codec::Codec> {
        crate::codec::supported()
    }

    /// The media session exists (codec chosen, sockets bound).
    fn session_started(&mut self) {}

    /// Audio starts flowing: what to play first.
    fn stream_started(&mut self) -> Action {
        Action::Nothing
    }

    /// Something finished playing.
    fn play_complete(&mut self, played: &PlaySource) -> Action {
        let _ = played;
        Action::Nothing
    }

    /// A DTMF digit arrived (RFC 4733 or SIP INFO).
    fn dtmf(&mut self, digit: char) -> Action {
        let _ = digit;
        Action::Nothing
    }

    /// Something failed (a file that cannot be read, a recording that cannot be written).
    fn stream_error(&mut self, error: &MediaError) -> ErrorAction {
        tracing::warn!(%error, "media stream error");
        ErrorAction::Continue
    }

    /// Called once per frame, before it is made: something to do now that
    /// no event prompted (for handlers driven from outside the call, such as
    /// a [`bridge`](super::bridge()) leg taking the other leg's digits or its
    /// hangup). Keep it cheap. Default: nothing.
    fn poll(&mut self) -> Action {
        Action::Nothing
    }

    /// The session ended.
    fn session_stopped(&mut self) {}
}

/// What the engine wants from the session around it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output {
    /// Send this DTMF digit.
    SendDtmf(char),
    /// Hang up the call.
    Hangup,
    /// Stop the media session.
    Stop,
    /// Read and decode this WAV file into the shared cache (`WavSource::open`)
    /// off the real-time path, then call [`MediaEngine::file_ready`]. Only
    /// with [`MediaEngine::with_deferred_files`].
    ReadFile(PathBuf),
    /// Create this recording (`WavRecorder::create`) off the real-time path,
    /// then call [`MediaEngine::recording_ready`]. Only with
    /// [`MediaEngine::with_deferred_files`].
    CreateRecording(PathBuf),
    /// Create this stereo recording (`WavRecorder::create_stereo`) off the
    /// real-time path, then call [`MediaEngine::recording_ready`]. Only with
    /// [`MediaEngine::with_deferred_files`].
    CreateStereoRecording(PathBuf),
}

struct Playing {
    play: Play,
    source: Box<dyn AudioSource>,
}

/// A live source at another rate than the call's, resampled as it is read.
struct Resampled {
    source: LiveSource,
    from: u32,
    to: u32,
    resampler: Resampler,
    /// Read from the source, to resample (reused).
    input: Vec<i16>,
    /// Resampled, not yet read.
    ready: VecDeque<i16>,
    scratch: Vec<i16>,
}

impl Resampled {
    fn new(source: LiveSource, to: u32) -> Resampled {
        let from = source.rate();
        Resampled {
            source,
            from,
            to,
            resampler: Resampler::new(from, to),
            input: Vec::new(),
            ready: VecDeque::new(),
            scratch: Vec::new(),
        }
    }
}

impl AudioSource for Resampled {
    fn read(&mut self, out: &mut [i16]) -> usize {
        // The resampler holds back a few samples of look-ahead: read until the frame is full
        // (a live source fills what it is asked for) or the source ends.
        while self.ready.len() < out.len() {
            let want = out.len() - self.ready.len();
            let n = (want as u64 * u64::from(self.from)).div_ceil(u64::from(self.to)) as usize;
            self.input.resize(n.max(1), 0);
            let got = self.source.read(&mut self.input);
            self.scratch.clear();
            self.resampler
                .process(&self.input[..got], &mut self.scratch);
            self.ready.extend(self.scratch.iter().copied());
            if got < self.input.len() {
                break;
            }
        }
        let n = self.ready.len().min(out.len());
        for (o, s) in out.iter_mut().zip(self.ready.drain(..n)) {
            *o = s;
        }
        n
    }
}

/// Where received audio goes live, and the conversion to its rate.
struct Listener {
    sink: LiveSink,
    resampler: Option<Resampler>,
    scratch: Vec<i16>,
}

impl Listener {
    fn new(sink: LiveSink, rate: u32) -> Listener {
        let resampler = (sink.rate() != rate).then(|| Resampler::new(rate, sink.rate()));
        Listener {
            sink,
            resampler,
            scratch: Vec::new(),
        }
    }

    fn write(&mut self, frame: &[i16]) {
        match self.resampler.as_mut() {
            None => self.sink.write(frame),
            Some(r) => {
                self.scratch.clear();
                r.process(frame, &mut self.scratch);
                self.sink.write(&self.scratch);
            }
        }
    }
}

/// Drives a [`MediaHandler`]: produces the next frame to send, takes frames
/// received, and applies the actions the handler returns. No network, no clock:
/// the session around it calls [`MediaEngine::next_frame`] once per ptime.
pub struct MediaEngine<H> {
    handler: H,
    playing: Option<Playing>,
    // The recorders and the listener are boxed: most calls have none, and
    // the engine lives as long as its call.
    recorder: Option<Box<WavRecorder>>,
    /// A two-way recording, and what was received but not yet written
    /// beside what we sent.
    both: Option<Box<(WavRecorder, VecDeque<i16>)>>,
    /// The two-way recording being created (deferred files).
    creating_both: Option<PathBuf>,
    listener: Option<Box<Listener>>,
    /// Samples per second of every frame in and out (the codec's PCM rate).
    rate: u32,
    outputs: VecDeque<Output>,
    stopped: bool,
    /// Files are read and created by the session around the engine
    /// (`Output::ReadFile`, `Output::CreateRecording`), not by the engine.
    deferred_files: bool,
    /// A play whose file is being read; silence until it is.
    waiting: Option<Play>,
    /// A recording being created; what arrives meanwhile is not recorded.
    creating: Option<PathBuf>,
}

impl<H> std::fmt::Debug for MediaEngine<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaEngine")
            .field("playing", &self.playing.as_ref().map(|p| &p.play))
            .field("recording", &self.recorder)
            .finish_non_exhaustive()
    }
}

fn open(play: &Play, rate: u32) -> Result<Box<dyn AudioSource>, MediaError> {
    Ok(match &play.source {
        PlaySource::File(path) => Box::new(WavSource::open_at(path, rate)?),
        PlaySource::Tone(f, secs) => Box::new(Tone::at_rate(*f, 0.5, rate).lasting(*secs)),
        PlaySource::Silence(secs) => Box::new(Tone::at_rate(0.0, 0.0, rate).lasting(*secs)),
        PlaySource::Live(live) if live.rate() == rate => Box::new(live.clone()),
        PlaySource::Live(live) => Box::new(Resampled::new(live.clone(), rate)),
    })
}

impl<H: MediaHandler> MediaEngine<H> {
    /// An engine for `handler` at 8 kHz; call [`MediaEngine::start`] when audio can flow.
    pub fn new(handler: H) -> MediaEngine<H> {
        MediaEngine {
            handler,
            playing: None,
            recorder: None,
            both: None,
            creating_both: None,
            listener: None,
            rate: super::RATE,
            outputs: VecDeque::new(),
            stopped: false,
            deferred_files: false,
            waiting: None,
            creating: None,
        }
    }

    /// The same engine at `rate` Hz (16 000 for a G.722 call): frames in and out, tones,
    /// files and recordings are at that rate; live sources and sinks are resampled to and
    /// from theirs. Set it before [`MediaEngine::start`].
    #[must_use]
    pub fn with_rate(mut self, rate: u32) -> MediaEngine<H> {
        self.set_rate(rate);
        self
    }

    /// [`MediaEngine::with_rate`] in place.
    pub(crate) fn set_rate(&mut self, rate: u32) {
        self.rate = rate.max(1);
    }

    /// The rate of the frames, in Hz.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// The same engine, leaving file I/O to the session around it: a play of
    /// a file not yet decoded waits (silence) for [`Output::ReadFile`] to be
    /// done, one already decoded starts at once from the shared cache (and is
    /// read again, off the real-time path, so an edited file is picked up
    /// next time); a recording is created through [`Output::CreateRecording`].
    /// Without it the engine reads and creates files itself, inline.
    #[must_use]
    pub fn with_deferred_files(mut self) -> MediaEngine<H> {
        self.deferred_files = true;
        self
    }

    /// The file of [`Output::ReadFile`] was read (or failed): a play waiting
    /// for it starts, or the handler hears of the error.
    pub fn file_ready(&mut self, path: &Path, result: Result<(), MediaError>) {
        let waiting_for_it = self
            .waiting
            .as_ref()
            .is_some_and(|p| matches!(&p.source, PlaySource::File(f) if f == path));
        if !waiting_for_it {
            return;
        }
        let Some(play) = self.waiting.take() else {
            return;
        };
        match result.and_then(|()| {
            WavSource::cached_at(path, self.rate).ok_or_else(|| MediaError::Wav {
                path: path.to_path_buf(),
                source: hound::Error::FormatError("not in the cache after reading"),
            })
        }) {
            Ok(source) => {
                self.playing = Some(Playing {
                    play,
                    source: Box::new(source),
                })
            }
            Err(e) => self.error(&e, Action::Play(play)),
        }
    }

    /// The recording of [`Output::CreateRecording`] was created (or failed).
    pub fn recording_ready(&mut self, path: &Path, result: Result<WavRecorder, MediaError>) {
        if self.creating_both.as_deref() == Some(path) {
            self.creating_both = None;
            match result {
                Ok(r) => self.both = Some(Box::new((r, VecDeque::new()))),
                Err(e) => self.error(&e, Action::Nothing),
            }
            return;
        }
        if self.creating.as_deref() != Some(path) {
            // Stopped or replaced meanwhile: close it as it is.
            if let Ok(r) = result {
                let _ = r.finish();
            }
            return;
        }
        self.creating = None;
        match result {
            Ok(r) => self.recorder = Some(Box::new(r)),
            Err(e) => self.error(&e, Action::Record(path.to_path_buf())),
        }
    }

    /// The handler.
    pub fn handler(&mut self) -> &mut H {
        &mut self.handler
    }

    /// The handler, to look at.
    pub fn handler_ref(&self) -> &H {
        &self.handler
    }

    /// Audio can flow: asks the handler what to play first.
    pub fn start(&mut self) {
        self.handler.session_started();
        let a = self.handler.stream_started();
        self.apply(a);
    }

    /// Applies an action (from the handler, or from the application).
    pub fn apply(&mut self, action: Action) {
        match action {
            Action::Nothing => {}
            Action::Play(play) => self.start_playing(play),
            Action::StopPlaying => {
                self.playing = None;
                self.waiting = None;
            }
            Action::Record(path) if self.deferred_files => {
                self.creating = Some(path.clone());
                self.outputs.push_back(Output::CreateRecording(path));
            }
            Action::Record(path) => match WavRecorder::create_at(&path, self.rate) {
                Ok(r) => self.recorder = Some(Box::new(r)),
                Err(e) => self.error(&e, Action::Record(path)),
            },
            Action::RecordBoth(path) if self.deferred_files => {
                self.creating_both = Some(path.clone());
                self.outputs.push_back(Output::CreateStereoRecording(path));
            }
            Action::RecordBoth(path) => match WavRecorder::create_stereo_at(&path, self.rate) {
                Ok(r) => self.both = Some(Box::new((r, VecDeque::new()))),
                Err(e) => self.error(&e, Action::Nothing),
            },
            Action::StopRecording => {
                self.creating = None;
                self.creating_both = None;
                let recorders = [
                    self.recorder.take().map(|r| *r),
                    self.both.take().map(|b| b.0),
                ];
                for r in recorders.into_iter().flatten() {
                    if let Err(e) = r.finish() {
                        self.error(&e, Action::Nothing);
                    }
                }
            }
            Action::Listen(sink) => self.listener = Some(Box::new(Listener::new(sink, self.rate))),
            Action::StopListening => self.listener = None,
            Action::SendDtmf(digits) => {
                self.outputs.extend(
                    digits
                        .chars()
                        .filter(|c| c.is_ascii_digit() || "*#ABCDabcd".contains(*c))
                        .map(Output::SendDtmf),
                );
            }
            Action::Hangup => self.outputs.push_back(Output::Hangup),
            Action::Stop => {
                self.stopped = true;
                self.outputs.push_back(Output::Stop);
            }
            Action::Several(list) => {
                for a in list {
                    self.apply(a);
                }
            }
        }
    }

    fn start_playing(&mut self, play: Play) {
        self.waiting = None;
        if self.deferred_files {
            if let PlaySource::File(path) = &play.source {
                self.outputs.push_back(Output::ReadFile(path.clone()));
                match WavSource::cached_at(path, self.rate) {
                    Some(source) => {
                        self.playing = Some(Playing {
                            play,
                            source: Box::new(source),
                        })
                    }
                    None => {
                        self.playing = None;
                        self.waiting = Some(play);
                    }
                }
                return;
            }
        }
        match open(&play, self.rate) {
            Ok(source) => self.playing = Some(Playing { play, source }),
            Err(e) => self.error(&e, Action::Play(play)),
        }
    }

    fn error(&mut self, e: &MediaError, failed: Action) {
        match self.handler.stream_error(e) {
            ErrorAction::Retry => {
                // Once: a second failure is reported and skipped.
                let again = match &failed {
                    Action::Play(p) => open(p, self.rate)
                        .map(|s| Playing {
                            play: p.clone(),
                            source: s,
                        })
                        .map(|p| self.playing = Some(p)),
                    Action::Record(path) => WavRecorder::create_at(path, self.rate)
                        .map(|r| self.recorder = Some(Box::new(r))),
                    _ => Ok(()),
                };
                if let Err(e2) = again {
                    tracing::warn!(error = %e2, "retry failed");
                }
            }
            ErrorAction::Continue => {}
            ErrorAction::Stop => self.apply(Action::Stop),
        }
    }

    /// The next frame to send (`frame.len()` samples at the engine's rate). Silence when
    /// nothing plays; when a source ends, the handler says what comes next.
    pub fn next_frame(&mut self, frame: &mut [i16]) {
        match self.handler.poll() {
            Action::Nothing => {}
            a => self.apply(a),
        }
        self.fill_frame(frame);
        // The sending side is the clock of a two-way recording: each frame
        // sent is written beside the same length of what was received.
        if let Some((r, heard)) = self.both.as_deref_mut() {
            let n = heard.len().min(frame.len());
            let left: Vec<i16> = heard.drain(..n).collect();
            if let Err(e) = r.write_stereo(&left, frame) {
                self.both = None;
                self.error(&e, Action::Nothing);
            }
        }
    }

    fn fill_frame(&mut self, frame: &mut [i16]) {
        let mut filled = 0;
        // A source that ends mid-frame is followed by the next one in the same frame.
        for _ in 0..4 {
            let Some(p) = self.playing.as_mut() else {
                break;
            };
            let n = p.source.read(&mut frame[filled..]);
            if p.play.volume != 1.0 {
                for s in &mut frame[filled..filled + n] {
                    *s = (f32::from(*s) * p.play.volume).clamp(-32768.0, 32767.0) as i16;
                }
            }
            filled += n;
            if filled == frame.len() {
                return;
            }
            let Some(done) = self.playing.take() else {
                break;
            };
            if done.play.looped {
                self.start_playing(done.play);
                continue;
            }
            let next = self.handler.play_complete(&done.play.source);
            self.apply(next);
        }
        Silence.read(&mut frame[filled..]);
    }

    /// True if a frame received would go somewhere (a recording, a
    /// listener): when false, the session need not decode what it receives.
    pub fn hears(&self) -> bool {
        self.listener.is_some() || self.both.is_some() || self.recorder.is_some()
    }

    /// A frame received from the peer (decoded, at the engine's rate).
    pub fn received(&mut self, frame: &[i16]) {
        if let Some(l) = self.listener.as_mut() {
            l.write(frame);
        }
        let tenth = self.rate as usize / 10;
        if let Some((_, heard)) = self.both.as_deref_mut() {
            heard.extend(frame.iter().copied());
            // At most 100 ms ahead of what we send (a burst, a late tick).
            let over = heard.len().saturating_sub(tenth);
            heard.drain(..over);
        }
        if let Some(r) = self.recorder.as_mut() {
            if let Err(e) = r.write(frame) {
                self.recorder = None;
                self.error(&e, Action::Nothing);
            }
        }
    }

    /// A DTMF digit arrived.
    pub fn dtmf(&mut self, digit: char) {
        let a = self.handler.dtmf(digit);
        self.apply(a);
    }

    /// What the engine wants done (DTMF to send, hang up, stop).
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// What plays now (or waits for its file), if anything (a looped play
    /// stays the same play).
    pub fn playing(&self) -> Option<&Play> {
        self.playing
            .as_ref()
            .map(|p| &p.play)
            .or(self.waiting.as_ref())
    }

    /// True while a recording is open.
    pub fn is_recording(&self) -> bool {
        self.recorder.is_some() || self.both.is_some()
    }

    /// True once the handler asked to stop.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// The session is over: closes the recording and tells the handler.
    pub fn stop(&mut self) {
        if let Some(r) = self.recorder.take() {
            let _ = r.finish();
        }
        if let Some((r, _)) = self.both.take().map(|b| *b) {
            let _ = r.finish();
        }
        self.playing = None;
        self.waiting = None;
        self.creating = None;
        self.handler.session_stopped();
    }
}

#[cfg(test)]
impl<H: MediaHandler> MediaEngine<H> {
    /// The next `n` 20 ms frames, one after the other (for tests).
    pub(crate) fn frames(&mut self, n: usize) -> Vec<i16> {
        let mut all = Vec::new();
        let mut f = [0i16; 160];
        for _ in 0..n {
            self.next_frame(&mut f);
            all.extend_from_slice(&f);
        }
        all
    }
}

impl<T: MediaHandler + ?Sized> MediaHandler for Box<T> {
    fn choose_codec(
        &mut self,
        offered: &[crate::codec::Codec],
        supported: &[crate::codec::Codec],
    ) -> Option<crate::codec::Codec> {
        (**self).choose_codec(offered, supported)
    }
    fn codecs(&self) -> Vec<crate::codec::Codec> {
        (**self).codecs()
    }
    fn session_started(&mut self) {
        (**self).session_started();
    }
    fn stream_started(&mut self) -> Action {
        (**self).stream_started()
    }
    fn play_complete(&mut self, played: &PlaySource) -> Action {
        (**self).play_complete(played)
    }
    fn dtmf(&mut self, digit: char) -> Action {
        (**self).dtmf(digit)
    }
    fn stream_error(&mut self, error: &MediaError) -> ErrorAction {
        (**self).stream_error(error)
    }
    fn poll(&mut self) -> Action {
        (**self).poll()
    }
    fn session_stopped(&mut self) {
        (**self).session_stopped();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::tone_present;

    #[derive(Default)]
    struct Ivr {
        events: Vec<String>,
        record_to: Option<PathBuf>,
    }

    impl MediaHandler for Ivr {
        fn stream_started(&mut self) -> Action {
            self.events.push("started".into());
            let rec = self
                .record_to
                .clone()
                .map_or(Action::Nothing, Action::Record);
            rec.also(Action::tone(440.0, 0.05))
        }
        fn play_complete(&mut self, played: &PlaySource) -> Action {
            self.events.push(format!("done {played:?}"));
            match played {
                PlaySource::Tone(f, _) if *f == 440.0 => Action::tone(1000.0, 0.05),
                _ => Action::Nothing,
            }
        }
        fn dtmf(&mut self, digit: char) -> Action {
            self.events.push(format!("dtmf {digit}"));
            if digit == '9' {
                Action::Hangup
            } else {
                Action::SendDtmf("12".into())
            }
        }
        fn stream_error(&mut self, e: &MediaError) -> ErrorAction {
            self.events
                .push(format!("error {}", e.to_string().contains("missing.wav")));
            ErrorAction::Continue
        }
    }

    #[test]
    fn plays_one_thing_after_another_then_silence() {
        let mut e = MediaEngine::new(Ivr::default());
        e.start();
        let mut frames = Vec::new();
        for _ in 0..10 {
            let mut f = [0i16; 160];
            e.next_frame(&mut f);
            frames.extend_from_slice(&f);
        }
        assert!(tone_present(&frames[..400], 440.0, 8000, 0.8));
        assert!(tone_present(&frames[400..800], 1000.0, 8000, 0.8));
        assert!(frames[800..].iter().all(|&s| s == 0), "silence after");
        assert_eq!(e.handler().events.len(), 3, "{:?}", e.handler().events);
    }

    #[test]
    fn dtmf_actions_and_errors() {
        let mut e = MediaEngine::new(Ivr::default());
        e.dtmf('5');
        assert_eq!(e.poll_output(), Some(Output::SendDtmf('1')));
        assert_eq!(e.poll_output(), Some(Output::SendDtmf('2')));
        e.dtmf('9');
        assert_eq!(e.poll_output(), Some(Output::Hangup));
        e.apply(Action::play("/nonexistent/missing.wav"));
        assert_eq!(
            e.handler().events.last().map(String::as_str),
            Some("error true")
        );
        let mut f = [1i16; 160];
        e.next_frame(&mut f);
        assert!(
            f.iter().all(|&s| s == 0),
            "silence instead of the missing file"
        );
    }

    #[test]
    fn live_source_and_sink() {
        use crate::media::{AudioSink, LiveSink, LiveSource};
        use std::sync::{Arc, Mutex};
        struct Collect(Arc<Mutex<Vec<i16>>>);
        impl AudioSink for Collect {
            fn write(&mut self, samples: &[i16]) {
                self.0.lock().unwrap().extend_from_slice(samples);
            }
        }
        let heard = Arc::new(Mutex::new(Vec::new()));
        let mut e = MediaEngine::new(Ivr::default());
        e.apply(Action::play_live(LiveSource::new(Tone::new(700.0, 0.5))));
        e.apply(Action::Listen(LiveSink::new(Collect(heard.clone()))));
        let mut sent = Vec::new();
        for _ in 0..50 {
            let mut f = [0i16; 160];
            e.next_frame(&mut f);
            sent.extend_from_slice(&f);
            e.received(&f);
        }
        assert!(tone_present(&sent, 700.0, 8000, 0.9));
        assert_eq!(heard.lock().unwrap().len(), 8000);
        e.apply(Action::StopListening);
        e.received(&[1; 160]);
        assert_eq!(heard.lock().unwrap().len(), 8000);
    }

    /// At 16 kHz (a G.722 call) tones, recordings and live sources and sinks at 8 kHz all
    /// keep their pitch and their length.
    #[test]
    fn a_wideband_engine_converts_what_is_not_at_its_rate() {
        use crate::media::{AudioSink, LiveSink, LiveSource};
        use std::sync::{Arc, Mutex};
        struct Collect(Arc<Mutex<Vec<i16>>>);
        impl AudioSink for Collect {
            fn write(&mut self, samples: &[i16]) {
                self.0.lock().unwrap().extend_from_slice(samples);
            }
        }
        let path =
            std::env::temp_dir().join(format!("parrot-engine-16k-{}.wav", std::process::id()));
        let mut e = MediaEngine::new(Ivr::default()).with_rate(16_000);
        assert_eq!(e.rate(), 16_000);
        e.apply(Action::Record(path.clone()));
        // A tone the engine makes: 6 kHz is there at 16 kHz.
        e.apply(Action::tone(6000.0, 0.2));
        let mut sent = Vec::new();
        for _ in 0..10 {
            let mut f = [0i16; 320];
            e.next_frame(&mut f);
            sent.extend_from_slice(&f);
            e.received(&f);
        }
        assert!(tone_present(&sent, 6000.0, 16_000, 0.9));
        // A live source at 8 kHz is upsampled: 700 Hz stays 700 Hz, one second stays one.
        let heard = Arc::new(Mutex::new(Vec::new()));
        e.apply(Action::play_live(LiveSource::new(Tone::new(700.0, 0.5))));
        e.apply(Action::Listen(LiveSink::new(Collect(heard.clone()))));
        let mut live = Vec::new();
        for _ in 0..50 {
            let mut f = [0i16; 320];
            e.next_frame(&mut f);
            live.extend_from_slice(&f);
            e.received(&f);
        }
        assert!(tone_present(&live[320..], 700.0, 16_000, 0.9));
        // And what is received is downsampled for the 8 kHz sink.
        let got = heard.lock().unwrap().clone();
        assert!((7900..=8000).contains(&got.len()), "{} samples", got.len());
        assert!(tone_present(&got[400..], 700.0, 8000, 0.9));
        // A live source at the engine's rate is read as it is.
        e.apply(Action::play_live(LiveSource::with_rate(
            Tone::at_rate(5000.0, 0.5, 16_000),
            16_000,
        )));
        let mut f = [0i16; 320];
        e.next_frame(&mut f);
        assert!(tone_present(&f, 5000.0, 16_000, 0.9));
        e.stop();
        let r = hound::WavReader::open(&path).unwrap();
        assert_eq!(r.spec().sample_rate, 16_000);
        assert_eq!(r.len(), 60 * 320);
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn records_what_it_receives() {
        let path = std::env::temp_dir().join(format!("parrot-engine-{}.wav", std::process::id()));
        let mut e = MediaEngine::new(Ivr {
            record_to: Some(path.clone()),
            ..Ivr::default()
        });
        e.start();
        let mut tone = Tone::new(700.0, 0.5);
        for _ in 0..50 {
            let mut f = [0i16; 160];
            tone.read(&mut f);
            e.received(&f);
        }
        e.stop();
        let mut src = WavSource::open(&path).unwrap();
        let mut all = vec![0i16; 8000];
        let n = src.read(&mut all);
        assert_eq!(n, 8000);
        assert!(tone_present(&all, 700.0, 8000, 0.9));
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn records_both_directions_in_stereo() {
        struct Plays;
        impl MediaHandler for Plays {}
        let path =
            std::env::temp_dir().join(format!("parrot-engine-both-{}.wav", std::process::id()));
        let mut e = MediaEngine::new(Plays);
        e.start();
        e.apply(Action::RecordBoth(path.clone()));
        e.apply(Action::tone(1000.0, 2.0));
        let mut heard = Tone::new(440.0, 0.5);
        for _ in 0..50 {
            let mut f = [0i16; 160];
            heard.read(&mut f);
            e.received(&f);
            let mut out = [0i16; 160];
            e.next_frame(&mut out);
        }
        e.stop();
        let mut r = hound::WavReader::open(&path).unwrap();
        assert_eq!(r.spec().channels, 2);
        let all: Vec<i16> = r.samples::<i16>().map(Result::unwrap).collect();
        let left: Vec<i16> = all.iter().step_by(2).copied().collect();
        let right: Vec<i16> = all.iter().skip(1).step_by(2).copied().collect();
        assert_eq!(left.len(), 8000);
        assert!(tone_present(&left, 440.0, 8000, 0.9), "left: what came in");
        assert!(
            tone_present(&right, 1000.0, 8000, 0.9),
            "right: what went out"
        );
        let _ = std::fs::remove_file(path);
    }

    /// With deferred files the engine never touches the file system: a file
    /// not yet decoded is asked for (`ReadFile`) and plays once it is ready;
    /// a recording is asked for (`CreateRecording`) and starts once created.
    #[test]
    fn deferred_files_wait_for_the_session_to_do_the_io() {
        struct Player(PathBuf, PathBuf);
        impl MediaHandler for Player {
            fn stream_started(&mut self) -> Action {
                Action::Record(self.1.clone()).also(Action::play(&self.0))
            }
        }
        let dir = std::env::temp_dir();
        let wav = dir.join(format!("parrot-deferred-{}.wav", std::process::id()));
        let rec = dir.join(format!("parrot-deferred-rec-{}.wav", std::process::id()));
        let mut w = WavRecorder::create(&wav).unwrap();
        let mut tone = Tone::new(900.0, 0.5);
        let mut buf = [0i16; 1600];
        tone.read(&mut buf);
        w.write(&buf).unwrap();
        w.finish().unwrap();

        let mut e = MediaEngine::new(Player(wav.clone(), rec.clone())).with_deferred_files();
        e.start();
        let outs: Vec<Output> = std::iter::from_fn(|| e.poll_output()).collect();
        assert!(
            outs.contains(&Output::CreateRecording(rec.clone())),
            "{outs:?}"
        );
        assert!(outs.contains(&Output::ReadFile(wav.clone())), "{outs:?}");
        assert!(!e.is_recording(), "not before the session created it");
        let mut frame = [1i16; 160];
        e.next_frame(&mut frame);
        assert!(
            frame.iter().all(|s| *s == 0),
            "silence while the file is read"
        );
        assert_eq!(
            e.playing().map(|p| &p.source),
            Some(&PlaySource::File(wav.clone()))
        );
        // What the session does in a blocking task, then hands back.
        let read = WavSource::open(&wav).map(drop);
        e.file_ready(&wav, read);
        e.recording_ready(&rec, WavRecorder::create(&rec));
        assert!(e.is_recording());
        let mut frame = [0i16; 160];
        e.next_frame(&mut frame);
        assert!(tone_present(&frame, 900.0, 8000, 0.5), "the file plays");
        // Decoded once: the next play starts at once from the cache.
        e.apply(Action::play(&wav));
        let mut frame = [0i16; 160];
        e.next_frame(&mut frame);
        assert!(tone_present(&frame, 900.0, 8000, 0.5));
        // A failed read reaches the handler's stream_error, not a panic.
        let missing = dir.join("parrot-deferred-missing.wav");
        e.apply(Action::play(&missing));
        let err = WavSource::open(&missing).map(drop);
        assert!(err.is_err());
        e.file_ready(&missing, err);
        assert!(e.playing().is_none());
        e.stop();
        let _ = std::fs::remove_file(wav);
        let _ = std::fs::remove_file(rec);
    }
}
