//! `parrot`: the Parrot command line. `parrot new uas|uac NAME` scaffolds a
//! SIP server or client from the templates compiled into the binary;
//! `parrot devices` lists the sound cards a call can use.
//!
//! Exit codes: 0 success, 1 failure (one `error:` line on stderr), 2 usage
//! errors (clap's).

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, Subcommand, ValueEnum};

mod devices;
mod names;
mod new;
mod template;

const EXAMPLES: &str = "\
Examples:
  parrot new uas my-server                 a SIP server answering on 0.0.0.0:5060
  parrot new uas ivr --port 5080 --module Ivr --no-media
  parrot new uac my-client --path ../clients/my-client --vcs none
  parrot new uac my-client --build         generate, then cargo build it
  parrot new agent my-agent                a voice agent: calls streamed to a WebSocket service
  parrot devices                           sound cards, for --input-device/--output-device
  parrot devices --json";

const NEW_EXAMPLES: &str = "\
Examples:
  parrot new uas my-server
      then: cd my-server && cargo run
  parrot new uac my-client
      then: cd my-client && cargo run -- call sip:service@127.0.0.1:5060
  parrot new uas pbx --port 5080 --bind 127.0.0.1 --module Pbx
  parrot new uac probe --no-media --parrot-path ~/src/parrot/parrot-core";

/// Parrot: scaffold SIP servers and clients in Rust, and list audio devices.
#[derive(Parser)]
#[command(name = "parrot", version, after_help = EXAMPLES, arg_required_else_help = true)]
struct Cli {
    /// Say more: every file created, cargo's output with --build.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Print nothing but errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Create a SIP server (uas) or client (uac) project from a template.
    #[command(after_help = NEW_EXAMPLES)]
    New(NewArgs),
    /// List audio devices (index, default, channels, rates, formats).
    Devices {
        /// Print the listing as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
struct NewArgs {
    /// What to create: `uas` (a server answering calls), `uac` (a client placing
    /// them) or `agent` (a server streaming calls to a WebSocket voice service).
    kind: Kind,
    /// The package name (ASCII letters, digits, `-`, `_`; like `cargo new`).
    name: String,
    /// Where to create the project [default: ./NAME].
    #[arg(long, value_name = "DIR")]
    path: Option<PathBuf>,
    /// The SIP port the server listens on (uas and agent) [default: 5060].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    port: Option<u16>,
    /// The IP address to bind.
    #[arg(long, default_value = "0.0.0.0", value_name = "IP")]
    bind: IpAddr,
    /// The name of the handler type, UpperCamelCase [default: the template's].
    #[arg(long, value_name = "TYPE")]
    module: Option<String>,
    /// Signaling only: no audio code, no WAV files, no `device` feature.
    #[arg(long)]
    no_media: bool,
    /// Depend on this parrot-core directory [default: this build's own
    /// parrot-core if it still exists, else the published version].
    #[arg(long, value_name = "PATH")]
    parrot_path: Option<PathBuf>,
    /// Version control for the new project [default: git when git is
    /// installed and the destination is not inside a repository].
    #[arg(long)]
    vcs: Option<Vcs>,
    /// Generate into an existing non-empty directory (files of the same name are replaced).
    #[arg(long)]
    force: bool,
    /// Run `cargo build` in the new project.
    #[arg(long)]
    build: bool,
    /// Render templates from DIR/uas and DIR/uac instead of the built-in ones.
    #[arg(long, value_name = "DIR", hide = true)]
    templates: Option<PathBuf>,
}

/// The kinds of project `parrot new` makes.
#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
pub(crate) enum Kind {
    /// A SIP server (user agent server): answers calls.
    Uas,
    /// A SIP client (user agent client): places calls.
    Uac,
    /// A voice agent: answers calls and streams them to a WebSocket service.
    Agent,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Uas => "uas",
            Kind::Uac => "uac",
            Kind::Agent => "agent",
        }
    }

    /// For suggested names: `test-server`.
    pub(crate) fn suffix(self) -> &'static str {
        match self {
            Kind::Uas => "server",
            Kind::Uac => "client",
            Kind::Agent => "agent",
        }
    }
}

/// `--vcs`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
pub(crate) enum Vcs {
    /// `git init` and a .gitignore with /target.
    Git,
    /// No repository.
    None,
}

/// How much to print.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Output {
    verbose: u8,
    quiet: bool,
}

impl Output {
    pub(crate) fn verbose(self) -> bool {
        self.verbose > 0
    }

    pub(crate) fn quiet(self) -> bool {
        self.quiet
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = Output {
        verbose: cli.verbose,
        quiet: cli.quiet,
    };
    let result = match cli.command {
        Commands::New(args) => {
            if args.kind == Kind::Uac && args.port.is_some() {
                let mut cmd = Cli::command();
                cmd.build(); // gives the subcommand its `parrot new` name for the usage line
                let new_cmd = cmd.find_subcommand_mut("new").map(|c| c.clone());
                new_cmd
                    .unwrap_or(cmd)
                    .error(
                        clap::error::ErrorKind::ArgumentConflict,
                        "--port applies to `parrot new uas` only: a client takes its port from the URI it calls",
                    )
                    .exit();
            }
            if args.kind == Kind::Agent && args.no_media {
                let mut cmd = Cli::command();
                cmd.build();
                let new_cmd = cmd.find_subcommand_mut("new").map(|c| c.clone());
                new_cmd
                    .unwrap_or(cmd)
                    .error(
                        clap::error::ErrorKind::ArgumentConflict,
                        "--no-media applies to `parrot new uas|uac` only: an agent streams the call's audio",
                    )
                    .exit();
            }
            new::run(
                new::NewOptions {
                    kind: args.kind,
                    name: args.name,
                    path: args.path,
                    port: args.port,
                    bind: args.bind,
                    module: args.module,
                    no_media: args.no_media,
                    parrot_path: args.parrot_path,
                    vcs: args.vcs,
                    force: args.force,
                    build: args.build,
                    templates: args.templates,
                },
                out,
            )
        }
        Commands::Devices { json } => devices::run(json, out),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("error: {}", chain.join(": "));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }
}
