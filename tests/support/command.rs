//! Running a program that a test needs to succeed.

use std::process::Command;

/// Runs `command`, which must exit 0; its stdout. A failure shows the command, its status and
/// both of its outputs (redis-cli, for one, reports its errors on stdout).
pub fn stdout_of(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("{command:?} did not run: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 on stdout")
}
