//! Logging set-up shared by both binaries: the console shows plain messages; `--log FILE`
//! also writes them, with times, to a file.

use simplelog::{
    ColorChoice, CombinedLogger, ConfigBuilder, LevelFilter, SharedLogger, TermLogger, TerminalMode,
    WriteLogger,
};
use std::fs::OpenOptions;
use std::io::{self, IsTerminal};
use std::path::Path;

/// Starts logging at `level` to stderr, and to `file` when given (appended).
pub fn init(level: LevelFilter, file: Option<&Path>) -> io::Result<()> {
    let console = ConfigBuilder::new()
        .set_time_level(LevelFilter::Off)
        .set_target_level(LevelFilter::Off)
        .set_thread_level(LevelFilter::Off)
        .set_location_level(LevelFilter::Off)
        .build();
    let color = if io::stderr().is_terminal() { ColorChoice::Auto } else { ColorChoice::Never };
    let mut loggers: Vec<Box<dyn SharedLogger>> =
        vec![TermLogger::new(level, console, TerminalMode::Stderr, color)];
    if let Some(path) = file {
        let f = OpenOptions::new().create(true).append(true).open(path)?;
        let timed = ConfigBuilder::new()
            .set_time_format_rfc3339()
            .set_target_level(LevelFilter::Off)
            .set_thread_level(LevelFilter::Off)
            .set_location_level(LevelFilter::Off)
            .build();
        loggers.push(WriteLogger::new(level, timed, f));
    }
    // A second init (tests starting several nodes in one process) keeps the first logger.
    let _ = CombinedLogger::init(loggers);
    Ok(())
}
