//! `parrot devices [--json]`: the sound cards cpal sees.

use std::io::Write as _;

use crate::Output;

/// Writes to stdout; a closed pipe (`parrot devices | head`) is not an error.
fn emit(text: &str) -> anyhow::Result<()> {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

pub(crate) fn run(json: bool, out: Output) -> anyhow::Result<()> {
    let list = match parrot_core::device::list() {
        Ok(list) => list,
        Err(e) => {
            // No usable audio backend is not a failure of this command.
            if json {
                return emit("{\"hosts\":[]}\n");
            }
            return emit(&format!("no audio devices: {e}\n"));
        }
    };
    if json {
        return emit(&format!("{}\n", list.to_json()));
    }
    if list.is_empty() {
        return emit(
            "no audio devices found on this machine (no sound card, or no audio host running)\n",
        );
    }
    let mut text = list.to_string();
    if !out.quiet() {
        text.push_str(
            "\n`*` marks a host's default device. Pick one in a uac with \
             --input-device/--output-device: `default`, an index, or part of a name.\n",
        );
    }
    emit(&text)
}
