//! Child processes that cannot outlive the harness. The children run in their own process group
//! so a kill reaches anything they started; that also shields them from the terminal's Ctrl-C,
//! so on Linux they are additionally told to die with the thread that spawned them.
//! (The harness is Unix-only, like the Lambda runtime it emulates.)

use tokio::net::unix::pipe;
use tokio::process::{Child, Command};

use crate::logs::{Capture, LogBook, Stream};

/// Prepares `cmd` so the spawned child never becomes a leftover.
///
/// The parent-death signal fires when the *spawning thread* exits. Tokio runtime threads (and
/// the `#[tokio::test]` thread) live as long as the code using the child, which is what makes
/// that safe here; spawning from a short-lived `spawn_blocking` thread would not be.
pub(crate) fn isolate(cmd: &mut Command) {
    cmd.kill_on_drop(true);
    cmd.process_group(0);
    #[cfg(target_os = "linux")]
    {
        // SAFETY: the closure runs between fork and exec and only calls prctl, which is
        // async-signal-safe, and reads errno; it touches no memory shared with the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

/// Sends SIGKILL to the process group led by `leader`.
///
/// Only call while the leader has not been reaped (its `wait` has not completed): until then
/// its pid, and so the group id, cannot be reused by an unrelated process.
pub(crate) fn kill_group(leader: u32) {
    if let Ok(pgid) = libc::pid_t::try_from(leader) {
        // SAFETY: killpg has no memory-safety preconditions; a stale group only yields ESRCH.
        unsafe {
            libc::killpg(pgid, libc::SIGKILL);
        }
    }
}

/// Starts capturing the child's stdout and stderr into `logs`. The pipes are read without
/// blocking, which is what lets [`LogSync`](crate::logs::LogSync) tell when everything written
/// so far has been captured.
pub(crate) fn capture_output(
    child: &mut Child,
    logs: &LogBook,
    environment: u64,
) -> std::io::Result<Vec<Capture>> {
    let mut captures = Vec::new();
    if let Some(out) = child.stdout.take() {
        let pipe = pipe::Receiver::from_owned_fd(out.into_owned_fd()?)?;
        captures.push(logs.capture(pipe, Stream::Stdout, environment)?);
    }
    if let Some(err) = child.stderr.take() {
        let pipe = pipe::Receiver::from_owned_fd(err.into_owned_fd()?)?;
        captures.push(logs.capture(pipe, Stream::Stderr, environment)?);
    }
    Ok(captures)
}
