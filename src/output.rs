//! Standard output and standard error that a closed pipe cannot break.
//!
//! `sluice run X --trace | head -1` closes the pipe after one line; `println!` would then panic. Every line the CLI
//! prints goes through [`write_out`] / [`write_err`] (the `outln!`, `out!` and `errln!` macros): once a stream is
//! found closed, nothing more is written to it, and the command finishes with the exit code of its verdict.

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static OUT_CLOSED: AtomicBool = AtomicBool::new(false);
static ERR_CLOSED: AtomicBool = AtomicBool::new(false);

fn write_to(closed: &AtomicBool, stream: &mut dyn Write, args: fmt::Arguments) {
    if closed.load(Ordering::Relaxed) {
        return;
    }
    // Any write error (a closed pipe, a full disk) ends output on that stream, never the command.
    if stream.write_fmt(args).and_then(|()| stream.flush()).is_err() {
        closed.store(true, Ordering::Relaxed);
    }
}

/// Writes to standard output unless it was found closed.
pub fn write_out(args: fmt::Arguments) {
    write_to(&OUT_CLOSED, &mut std::io::stdout().lock(), args);
}

/// Writes to standard error unless it was found closed.
pub fn write_err(args: fmt::Arguments) {
    write_to(&ERR_CLOSED, &mut std::io::stderr().lock(), args);
}

/// `println!` that a closed pipe cannot break.
macro_rules! outln {
    ($($arg:tt)*) => { $crate::output::write_out(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `print!` that a closed pipe cannot break.
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::write_out(format_args!($($arg)*)) };
}

/// `eprintln!` that a closed pipe cannot break.
macro_rules! errln {
    ($($arg:tt)*) => { $crate::output::write_err(format_args!("{}\n", format_args!($($arg)*))) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer whose reader went away.
    struct Closed(u32);

    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            self.0 += 1;
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_stream_is_written_once_then_left_alone() {
        let closed = AtomicBool::new(false);
        let mut w = Closed(0);
        write_to(&closed, &mut w, format_args!("a\n"));
        write_to(&closed, &mut w, format_args!("b\n"));
        assert!(closed.load(Ordering::Relaxed));
        assert_eq!(w.0, 1, "no write after the pipe was found closed");
    }
}
