use std::collections::VecDeque;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::net::unix::pipe;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Set to `1` to mirror every captured line to the test's stderr while it runs; otherwise the
/// output is only kept in memory, so passing tests stay quiet.
const ECHO_ENV: &str = "DMM_AWS_ECHO_LOGS";

/// Long soak runs log a lot; beyond this the oldest lines are dropped (marks stay valid).
const MAX_LINES: usize = 100_000;

/// Which pipe a line came from. The binaries log JSON to stdout; panics and the runtime's own
/// complaints go to stderr, so tests sometimes need to tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One line of output from a child process, as the CloudWatch log stream would hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub stream: Stream,
    pub text: String,
    /// Which process produced it (1 for the first cold start, 2 after the first restart, ...), so
    /// a test can tell output of a crashed process from that of its replacement.
    pub environment: u64,
}

impl LogLine {
    /// The binaries emit structured JSON logs; tests assert on fields, not on formatting.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.text).ok()
    }
}

/// A position in a function's log, so a test can look at what one invocation printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogMark(u64);

/// Captured output of one or more child processes, shared by the pipe readers and the owner.
#[derive(Clone)]
pub(crate) struct LogBook {
    inner: Arc<Mutex<Book>>,
    label: Arc<str>,
    echo: bool,
}

struct Book {
    lines: VecDeque<LogLine>,
    /// Sequence number of `lines[0]`; grows as old lines are dropped.
    first: u64,
}

impl LogBook {
    pub(crate) fn new(label: &str) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Book {
                lines: VecDeque::new(),
                first: 0,
            })),
            label: label.into(),
            echo: std::env::var(ECHO_ENV).is_ok_and(|v| v == "1"),
        }
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        // A reader task cannot leave the book half-updated, so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn push(&self, line: LogLine) {
        if self.echo {
            let pipe = match line.stream {
                Stream::Stdout => "out",
                Stream::Stderr => "err",
            };
            // Written to the real stderr, past the test harness's output capture: whoever set
            // the variable wants to watch the processes live, even while tests pass.
            let _ = writeln!(
                std::io::stderr().lock(),
                "[{}#{} {pipe}] {}",
                self.label,
                line.environment,
                line.text
            );
        }
        let mut book = self.book();
        book.lines.push_back(line);
        if book.lines.len() > MAX_LINES {
            book.lines.pop_front();
            book.first += 1;
        }
    }

    pub(crate) fn mark(&self) -> LogMark {
        let book = self.book();
        LogMark(book.first + book.lines.len() as u64)
    }

    pub(crate) fn since(&self, mark: LogMark) -> Vec<LogLine> {
        let book = self.book();
        let skip = mark.0.saturating_sub(book.first);
        book.lines
            .iter()
            .skip(usize::try_from(skip).unwrap_or(usize::MAX))
            .cloned()
            .collect()
    }

    /// The last `count` lines of one process, for error messages about how it died.
    pub(crate) fn tail(&self, environment: u64, count: usize) -> Vec<String> {
        let book = self.book();
        let mut tail: Vec<String> = book
            .lines
            .iter()
            .rev()
            .filter(|line| line.environment == environment)
            .take(count)
            .map(|line| line.text.clone())
            .collect();
        tail.reverse();
        tail
    }

    /// Reads `pipe` into the book line by line until the process closes it.
    pub(crate) fn capture(
        &self,
        pipe: pipe::Receiver,
        stream: Stream,
        environment: u64,
    ) -> std::io::Result<Capture> {
        let direct = File::from(pipe.as_fd().try_clone_to_owned()?);
        let book = self.clone();
        let (sync, mut requests) = mpsc::unbounded_channel::<oneshot::Sender<()>>();
        let task = tokio::spawn(async move {
            let mut reader = LineReader {
                pipe,
                direct,
                partial: Vec::new(),
                chunk: vec![0; 64 * 1024],
                book,
                stream,
                environment,
            };
            let mut syncable = true;
            loop {
                tokio::select! {
                    biased;
                    request = requests.recv(), if syncable => {
                        let open = reader.drain();
                        match request {
                            Some(ack) => {
                                let _ = ack.send(());
                            }
                            None => syncable = false,
                        }
                        if !open {
                            break;
                        }
                    }
                    ready = reader.pipe.readable() => {
                        if ready.is_err() || !reader.drain() {
                            break;
                        }
                    }
                }
            }
            reader.finish();
        });
        Ok(Capture {
            sync: LogSync(sync),
            task,
        })
    }
}

/// A running pipe reader.
pub(crate) struct Capture {
    pub(crate) sync: LogSync,
    /// Ends when the process closed the pipe.
    pub(crate) task: JoinHandle<()>,
}

/// Lets the owner of a process wait until its output so far is in the book. Without it, a test
/// that asserts on a log line right after an invocation would race the pipe reader.
#[derive(Clone)]
pub(crate) struct LogSync(mpsc::UnboundedSender<oneshot::Sender<()>>);

impl LogSync {
    /// Returns once every byte written to the pipe before this call has been read into the
    /// book (a trailing partial line stays pending until its newline arrives).
    pub(crate) async fn sync(&self) {
        let (ack, done) = oneshot::channel();
        if self.0.send(ack).is_ok() {
            // An error means the reader ended: then it has already read everything.
            let _ = done.await;
        }
    }
}

struct LineReader {
    pipe: pipe::Receiver,
    /// The same pipe (a duplicated descriptor, so also non-blocking) for reads the reactor has
    /// not announced yet.
    direct: File,
    partial: Vec<u8>,
    chunk: Vec<u8>,
    book: LogBook,
    stream: Stream,
    environment: u64,
}

impl LineReader {
    /// Reads whatever the pipe holds right now; `false` once it is closed.
    ///
    /// Tokio's `try_read` only reads when the reactor has already reported the pipe readable,
    /// which may lag behind the kernel; a plain non-blocking read on a duplicate of the
    /// descriptor picks up what was written since. Tokio's own read comes first so that its
    /// readiness flag is cleared and `readable()` does not spin.
    fn drain(&mut self) -> bool {
        loop {
            match self.pipe.try_read(&mut self.chunk) {
                Ok(0) => return false,
                Ok(n) => self.take(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        loop {
            match self.direct.read(&mut self.chunk) {
                Ok(0) => return false,
                Ok(n) => self.take(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }

    fn take(&mut self, n: usize) {
        self.partial.extend_from_slice(&self.chunk[..n]);
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            self.push(&line);
        }
    }

    fn push(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        self.book.push(LogLine {
            stream: self.stream,
            text: text.trim_end_matches(['\n', '\r']).to_owned(),
            environment: self.environment,
        });
    }

    fn finish(mut self) {
        if !self.partial.is_empty() {
            let last = std::mem::take(&mut self.partial);
            self.push(&last);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn line(text: &str, environment: u64) -> LogLine {
        LogLine {
            stream: Stream::Stdout,
            text: text.to_owned(),
            environment,
        }
    }

    #[test]
    fn since_returns_only_lines_after_the_mark() {
        let book = LogBook::new("t");
        book.push(line("before", 1));
        let mark = book.mark();
        book.push(line("after", 1));
        let texts: Vec<String> = book.since(mark).into_iter().map(|l| l.text).collect();
        assert_eq!(texts, ["after"]);
    }

    #[test]
    fn marks_survive_dropping_old_lines() {
        let book = LogBook::new("t");
        for i in 0..MAX_LINES {
            book.push(line(&i.to_string(), 1));
        }
        let mark = book.mark();
        book.push(line("newest", 1));
        assert_eq!(book.since(mark).len(), 1);
        assert_eq!(book.since(LogMark(0)).len(), MAX_LINES);
        assert_eq!(book.since(LogMark(0))[0].text, "1");
    }

    #[test]
    fn tail_is_limited_to_one_environment_and_in_order() {
        let book = LogBook::new("t");
        for (text, env) in [("a", 1), ("b", 2), ("c", 1), ("d", 1)] {
            book.push(line(text, env));
        }
        assert_eq!(book.tail(1, 2), ["c", "d"]);
        assert_eq!(book.tail(2, 5), ["b"]);
    }

    #[tokio::test]
    async fn capture_splits_lines_and_tolerates_invalid_utf8_and_a_missing_final_newline() {
        let book = LogBook::new("t");
        let (mut tx, rx) = pipe::pipe().unwrap();
        let capture = book.capture(rx, Stream::Stderr, 7).unwrap();
        tx.write_all(b"{\"level\":\"INFO\"}\r\nbad \xff byte\nlast")
            .await
            .unwrap();
        drop(tx);
        capture.task.await.unwrap();
        let lines = book.since(LogMark(0));
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["{\"level\":\"INFO\"}", "bad \u{fffd} byte", "last"]);
        assert_eq!(lines[0].json().unwrap()["level"], "INFO");
        assert!(lines[1].json().is_none());
        assert!(
            lines
                .iter()
                .all(|l| l.stream == Stream::Stderr && l.environment == 7)
        );
    }

    #[tokio::test]
    async fn sync_returns_after_everything_written_so_far_is_in_the_book() {
        let book = LogBook::new("t");
        let (mut tx, rx) = pipe::pipe().unwrap();
        let capture = book.capture(rx, Stream::Stdout, 1).unwrap();
        for i in 0..50 {
            tx.write_all(format!("line {i}\n").as_bytes())
                .await
                .unwrap();
            tx.write_all(b"partial").await.unwrap();
            capture.sync.sync().await;
            let lines = book.since(LogMark(0));
            assert_eq!(lines.len(), 2 * i + 1, "after round {i}");
            assert_eq!(lines.last().unwrap().text, format!("line {i}"));
            tx.write_all(b" end\n").await.unwrap();
            capture.sync.sync().await;
            assert_eq!(book.since(LogMark(0)).last().unwrap().text, "partial end");
        }
        drop(tx);
        capture.task.await.unwrap();
        capture.sync.sync().await;
    }
}
