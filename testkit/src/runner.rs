//! Starting the binaries cargo built the way cargo starts the tests.
//!
//! Cross-compiled tests run through the target's runner, for example
//! `qemu-aarch64-static` for an arm64 build on an amd64 machine (cargo's
//! `CARGO_TARGET_<TRIPLE>_RUNNER`). The binaries under test are built for the
//! same target, so they need the same runner: the kernel cannot execute them
//! itself unless someone registered a binfmt handler, which is a machine-wide
//! change that tests must not count on.

use std::process::Command;

/// The triple testkit, and so the test calling it, was compiled for
/// (see build.rs).
const TARGET: &str = env!("TESTKIT_TARGET");

/// A command that runs `binary`, one that cargo built for the target (its
/// path as `env!("CARGO_BIN_EXE_<name>")` gives it), through the target's
/// runner when cargo runs the tests through one, else directly.
///
/// The runner is read from the environment variable cargo reads,
/// `CARGO_TARGET_<TRIPLE>_RUNNER`, which the tests inherit from cargo. A
/// runner set only in a `.cargo/config.toml` stays invisible here: set the
/// variable instead, as `make test-arm64` does.
pub fn cargo_bin(binary: &str) -> Command {
    match runner_command() {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(binary);
            command
        }
        None => Command::new(binary),
    }
}

/// The runner that cargo runs the tests through, as the variable gives it,
/// if there is one: for the few tests that measure a process's CPU time or
/// memory, which under an emulator count the emulator's work too.
pub fn runner() -> Option<String> {
    std::env::var(runner_variable())
        .ok()
        .filter(|value| !value.trim().is_empty())
}

/// The runner's program and its arguments, split on whitespace as cargo
/// splits the variable.
fn runner_command() -> Option<(String, Vec<String>)> {
    let value = runner()?;
    let mut words = value.split_whitespace().map(str::to_owned);
    let program = words.next()?;
    Some((program, words.collect()))
}

/// `CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUNNER` for
/// `aarch64-unknown-linux-musl`, as cargo spells it.
pub(crate) fn runner_variable() -> String {
    format!(
        "CARGO_TARGET_{}_RUNNER",
        TARGET.replace(['-', '.'], "_").to_uppercase()
    )
}

/// `wrapper` followed by `command`'s program and arguments, with `command`'s
/// environment and working directory: for programs that run another, such
/// as `unshare … PROGRAM ARGS` or `sh -c '… exec "$0" "$@"' PROGRAM ARGS`.
/// The variables `command` sets or removes carry over; an `env_clear` does
/// not, as `Command` does not tell.
pub fn wrap(mut wrapper: Command, command: &Command) -> Command {
    wrapper.arg(command.get_program()).args(command.get_args());
    for (name, value) in command.get_envs() {
        match value {
            Some(value) => wrapper.env(name, value),
            None => wrapper.env_remove(name),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        wrapper.current_dir(dir);
    }
    wrapper
}
