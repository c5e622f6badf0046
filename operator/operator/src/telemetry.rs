//! Logging: JSON lines when stdout is not a terminal (journald, log shippers),
//! readable lines when it is. `RUST_LOG` filters; default `info`.

use std::io::{self, IsTerminal, Write};

use tracing_subscriber::{fmt, fmt::MakeWriter, EnvFilter};

use crate::{config::LogFormat, report::redact};

/// Standard output with every line passed through [`redact`] first: whatever a log field
/// holds (an error rendered without [`crate::report::Chain`], a URL), no secret is written.
/// The formatter hands each event over in one `write`, so a secret is never split.
#[derive(Clone, Copy, Debug, Default)]
pub struct RedactingStdout;

impl<'a> MakeWriter<'a> for RedactingStdout {
    type Writer = Redacting<io::Stdout>;

    fn make_writer(&'a self) -> Self::Writer {
        Redacting(io::stdout())
    }
}

/// A writer that redacts each buffer it is handed before passing it on.
#[derive(Debug)]
pub struct Redacting<W>(pub W);

impl<W: Write> Write for Redacting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.0.write_all(redact(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let builder = fmt().with_env_filter(filter).with_target(false).with_writer(RedactingStdout);
    // A second init (tests, the demo) keeps the first subscriber.
    let _ = if json {
        builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init()
    } else {
        builder.compact().try_init()
    };
}
