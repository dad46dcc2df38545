//! Where the app's lines go: standard output, or a file a log shipper reads.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

pub enum Output {
    Stdout,
    File { path: PathBuf, file: File },
}

impl Output {
    /// Standard output, or `path` opened for appending (created if missing),
    /// so that a bad path fails before the work rather than after it.
    pub fn open(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(Self::Stdout);
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok(Self::File {
            path: path.to_owned(),
            file,
        })
    }

    /// Writes one line. Through a handle rather than println!, which panics
    /// when stdout is closed: a failed write is an error with a message. The
    /// file is unbuffered, so a line is in it, for the shipper to read, as
    /// soon as this returns.
    pub fn line(&mut self, text: &str) -> anyhow::Result<()> {
        match self {
            Self::Stdout => writeln!(std::io::stdout(), "{text}").context("cannot write to stdout"),
            Self::File { path, file } => writeln!(file, "{text}")
                .with_context(|| format!("cannot write to {}", path.display())),
        }
    }
}
