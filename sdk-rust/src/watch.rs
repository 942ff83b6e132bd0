//! The change stream (`MemoryService.WatchMemories`), resumed from its cursor when it breaks.
//!
//! [`Watcher`] owns the call: it opens it from the last cursor received, hands out each response,
//! and, when the server ends the stream or it breaks (`UNAVAILABLE`, a connection lost), waits a
//! backoff and opens it again from that cursor. [`WatchStream`] yields the events of the
//! responses one by one and hides heartbeats; [`WatchResponses`] yields the responses as sent.
//! Nothing runs in the background: the call lives inside the stream, and dropping the stream
//! cancels it.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tonic::codec::Streaming;

use crate::error::{Code, Error};
use crate::pb::engram::v1::{MemoryEvent, WatchMemoriesRequest, WatchMemoriesResponse};
use crate::{Client, Result, Stream};

/// Opening one call: the response stream once the server answered.
pub(crate) type Open =
    Pin<Box<dyn Future<Output = Result<Streaming<WatchMemoriesResponse>>> + Send>>;

enum State {
    /// Open a call from `resume_after` at the next poll.
    Connect,
    /// Wait, then open a call.
    Backoff(Pin<Box<tokio::time::Sleep>>),
    /// The call was sent; waiting for the server's answer.
    Opening(Open),
    /// Reading responses (boxed: the decoder state is large).
    Reading(Box<Streaming<WatchMemoriesResponse>>),
    /// An error was yielded: the stream is over.
    Done,
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            State::Connect => "connecting",
            State::Backoff(_) => "waiting to reconnect",
            State::Opening(_) => "opening",
            State::Reading(_) => "reading",
            State::Done => "done",
        }
    }
}

/// The call and its resumption, shared by [`WatchStream`] and [`WatchResponses`].
pub(crate) struct Watcher {
    client: Client,
    agent_id: String,
    /// Where the next call starts: the cursor of the last response received (at first the
    /// caller's `start_after`).
    resume_after: String,
    state: State,
    /// Failed attempts since the last response (each one waits a longer backoff).
    failures: u32,
    /// How many failed attempts in a row are retried; `None`: no limit.
    max_reconnects: Option<u32>,
    /// How many times the call was opened again.
    reconnects: u64,
}

impl Watcher {
    pub(crate) fn new(client: Client, agent_id: String, start_after: String) -> Self {
        Self {
            client,
            agent_id,
            resume_after: start_after,
            state: State::Connect,
            failures: 0,
            max_reconnects: None,
            reconnects: 0,
        }
    }

    /// Whether a failed or ended call is opened again (after a backoff): the server was not
    /// reachable or is draining (`UNAVAILABLE`), or the connection broke under the stream (a
    /// status the client's transport made up, not one the server sent). Every other error is
    /// the server's answer to this watch (`OUT_OF_RANGE`, `INVALID_ARGUMENT`,
    /// `PERMISSION_DENIED`...) and ends it.
    fn resumable(err: &Error) -> bool {
        match err {
            Error::Status {
                code, from_server, ..
            } => *code == Code::Unavailable || !*from_server,
            Error::Transport { .. } => true,
            _ => false,
        }
    }

    /// After a failed or ended call: schedules the next one, or ends the stream with `err`.
    fn failed(&mut self, err: Error) -> Option<Error> {
        let within_limit = self.max_reconnects.is_none_or(|max| self.failures < max);
        if !Self::resumable(&err) || !within_limit {
            self.state = State::Done;
            return Some(err);
        }
        let delay = (self.client.retry_policy().delay(self.failures))
            .max(err.retry_after().unwrap_or_default());
        self.failures = self.failures.saturating_add(1);
        self.reconnects += 1;
        self.state = State::Backoff(Box::pin(tokio::time::sleep(delay)));
        None
    }

    pub(crate) fn poll_response(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<WatchMemoriesResponse>>> {
        loop {
            match &mut self.state {
                State::Done => return Poll::Ready(None),
                State::Connect => {
                    let request = WatchMemoriesRequest {
                        agent_id: self.agent_id.clone(),
                        start_after: self.resume_after.clone(),
                    };
                    self.state = State::Opening(self.client.open_watch(request));
                }
                State::Backoff(sleep) => {
                    ready!(sleep.as_mut().poll(cx));
                    self.state = State::Connect;
                }
                State::Opening(open) => match ready!(open.as_mut().poll(cx)) {
                    Ok(stream) => self.state = State::Reading(Box::new(stream)),
                    Err(err) => {
                        if let Some(err) = self.failed(err) {
                            return Poll::Ready(Some(Err(err)));
                        }
                    }
                },
                State::Reading(stream) => {
                    let err = match ready!(Pin::new(stream.as_mut()).poll_next(cx)) {
                        Some(Ok(response)) => {
                            self.failures = 0;
                            let cursor = match response.events.last() {
                                _ if !response.cursor.is_empty() => &response.cursor,
                                Some(last) if !last.cursor.is_empty() => &last.cursor,
                                _ => &self.resume_after,
                            };
                            self.resume_after = cursor.clone();
                            return Poll::Ready(Some(Ok(response)));
                        }
                        Some(Err(status)) => Error::from_call(status, self.client.endpoint()),
                        // The server ended the stream: it is shutting down.
                        None => Error::Status {
                            code: Code::Unavailable,
                            message: "the server ended the change stream".into(),
                            details: Vec::new(),
                            from_server: true,
                        },
                    };
                    if let Some(err) = self.failed(err) {
                        return Poll::Ready(Some(Err(err)));
                    }
                }
            }
        }
    }
}

impl fmt::Debug for Watcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watcher")
            .field("agent_id", &self.agent_id)
            .field("resume_after", &self.resume_after)
            .field("state", &self.state.name())
            .field("reconnects", &self.reconnects)
            .field("max_reconnects", &self.max_reconnects)
            .finish()
    }
}

/// The changes to an agent's memories as they happen, one [`MemoryEvent`] at a time, in the
/// server's order; made by [`Client::watch`](crate::Client::watch).
///
/// * **Resumes by itself.** When the server ends the stream (it is restarting) or the call fails
///   with `UNAVAILABLE` or a broken connection, the stream waits a backoff (the client's
///   [`RetryPolicy`](crate::RetryPolicy): full jitter from `initial_backoff`, doubling, capped at
///   `max_backoff`) and calls again after the last cursor it received: no event is lost or
///   repeated. By default it keeps trying for as long as the stream is read
///   ([`max_reconnects`](Self::max_reconnects) sets a limit).
/// * **Heartbeats are hidden.** The server sends an empty response every 15 s while nothing
///   changes; it only moves [`cursor`](Self::cursor).
/// * **Errors end it.** Any other error is yielded once and ends the stream: `OUT_OF_RANGE` when
///   the cursor is older than the changes the server keeps (resynchronise with
///   [`Client::export`](crate::Client::export), then watch from `""`), `INVALID_ARGUMENT` for a
///   malformed cursor or one from another server, `PERMISSION_DENIED`, `FAILED_PRECONDITION`
///   when the server keeps no changes (`event_retention = 0`).
/// * **Lazy, and cancelled by drop.** The call opens when the stream is first polled and runs
///   inside the stream (no background task): dropping the stream cancels it.
///
/// ```no_run
/// # async fn run(client: engram_client::Client) -> engram_client::Result<()> {
/// use engram_client::{MemoryEventType, StreamExt};
///
/// let mut changes = client.watch("agent-1", "0"); // "0": every change the server still keeps
/// while let Some(event) = changes.next().await {
///     let event = event?;
///     match event.r#type() {
///         MemoryEventType::Created | MemoryEventType::Updated => {
///             println!("{} v{}: {}", event.memory_id, event.version, event.memory.unwrap().content)
///         }
///         _ => println!("{} gone ({:?})", event.memory_id, event.r#type()),
///     }
///     // Save changes.cursor() to resume there after a restart: client.watch("agent-1", cursor).
/// }
/// # Ok(()) }
/// ```
pub struct WatchStream {
    watcher: Watcher,
    /// Events received and not yet yielded.
    buffer: VecDeque<MemoryEvent>,
    /// The cursor of the response the buffered events came in.
    batch_cursor: String,
    /// The position after the last event yielded (or the last heartbeat).
    cursor: String,
}

impl WatchStream {
    pub(crate) fn new(watcher: Watcher) -> Self {
        let cursor = watcher.resume_after.clone();
        Self {
            watcher,
            buffer: VecDeque::new(),
            batch_cursor: String::new(),
            cursor,
        }
    }

    /// The position after the last event this stream yielded (moved on by heartbeats and past
    /// changes this watch does not show): pass it as `start_after` to
    /// [`Client::watch`](crate::Client::watch) to continue exactly there, e.g. after a restart
    /// of your program. Before the first event it is the `start_after` the watch began with.
    pub fn cursor(&self) -> &str {
        &self.cursor
    }

    /// How many times the call was opened again after the server ended it or it broke.
    pub fn reconnects(&self) -> u64 {
        self.watcher.reconnects
    }

    /// Gives up after `max` failed reconnections in a row (no response in between), yielding
    /// the last error (`UNAVAILABLE`) and ending the stream; `0` never reconnects. By default
    /// the stream reconnects for as long as it is read.
    ///
    /// ```no_run
    /// # async fn run(client: engram_client::Client) {
    /// let changes = client.watch("agent-1", "").max_reconnects(10);
    /// # }
    /// ```
    pub fn max_reconnects(mut self, max: u32) -> Self {
        self.watcher.max_reconnects = Some(max);
        self
    }

    /// The same watch as the raw responses the server sends: each a batch of events (as one
    /// transaction made them visible) with the cursor after it, heartbeats included (no events,
    /// the current cursor). It resumes like this stream. Events this stream has received but
    /// not yielded come first, in one response.
    ///
    /// ```no_run
    /// # async fn run(client: engram_client::Client) -> engram_client::Result<()> {
    /// use engram_client::StreamExt;
    ///
    /// let mut responses = client.watch("agent-1", "0").into_responses();
    /// if let Some(response) = responses.next().await {
    ///     let response = response?;
    ///     println!("{} events, up to {}", response.events.len(), response.cursor);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn into_responses(self) -> WatchResponses {
        let pending = (!self.buffer.is_empty()).then(|| WatchMemoriesResponse {
            events: self.buffer.into(),
            cursor: self.batch_cursor,
        });
        WatchResponses {
            watcher: self.watcher,
            pending,
            cursor: self.cursor,
        }
    }
}

impl Stream for WatchStream {
    type Item = Result<MemoryEvent>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(event) = this.buffer.pop_front() {
                if this.buffer.is_empty() && !this.batch_cursor.is_empty() {
                    // The response's cursor: past this event and past what this watch skips.
                    this.cursor = std::mem::take(&mut this.batch_cursor);
                } else if !event.cursor.is_empty() {
                    this.cursor.clone_from(&event.cursor);
                }
                return Poll::Ready(Some(Ok(event)));
            }
            match ready!(this.watcher.poll_response(cx)) {
                None => return Poll::Ready(None),
                Some(Err(err)) => return Poll::Ready(Some(Err(err))),
                Some(Ok(response)) if response.events.is_empty() => {
                    // A heartbeat.
                    if !response.cursor.is_empty() {
                        this.cursor = response.cursor;
                    }
                }
                Some(Ok(response)) => {
                    this.batch_cursor = response.cursor;
                    this.buffer.extend(response.events);
                }
            }
        }
    }
}

impl fmt::Debug for WatchStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchStream")
            .field("cursor", &self.cursor)
            .field("buffered", &self.buffer.len())
            .field("watcher", &self.watcher)
            .finish()
    }
}

/// The responses of a watch as the server sends them, heartbeats included, resumed like
/// [`WatchStream`]; made by [`WatchStream::into_responses`].
pub struct WatchResponses {
    watcher: Watcher,
    /// Events a [`WatchStream`] had received and not yielded.
    pending: Option<WatchMemoriesResponse>,
    /// The cursor of the last response yielded.
    cursor: String,
}

impl WatchResponses {
    /// The cursor of the last response yielded (before the first, the watch's `start_after`):
    /// pass it as `start_after` to continue after it.
    pub fn cursor(&self) -> &str {
        &self.cursor
    }

    /// How many times the call was opened again after the server ended it or it broke.
    pub fn reconnects(&self) -> u64 {
        self.watcher.reconnects
    }

    /// See [`WatchStream::max_reconnects`].
    pub fn max_reconnects(mut self, max: u32) -> Self {
        self.watcher.max_reconnects = Some(max);
        self
    }
}

impl Stream for WatchResponses {
    type Item = Result<WatchMemoriesResponse>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let item = match this.pending.take() {
            Some(pending) => Some(Ok(pending)),
            None => ready!(this.watcher.poll_response(cx)),
        };
        if let Some(Ok(response)) = &item
            && !response.cursor.is_empty()
        {
            this.cursor.clone_from(&response.cursor);
        }
        Poll::Ready(item)
    }
}

impl fmt::Debug for WatchResponses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchResponses")
            .field("cursor", &self.cursor)
            .field("watcher", &self.watcher)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::{RetryPolicy, StreamExt};

    fn status(code: Code, from_server: bool) -> Error {
        Error::Status {
            code,
            message: String::new(),
            details: Vec::new(),
            from_server,
        }
    }

    #[test]
    fn only_breaks_and_unavailable_are_resumed() {
        assert!(Watcher::resumable(&status(Code::Unavailable, true)));
        assert!(Watcher::resumable(&status(Code::Unavailable, false)));
        // A connection that broke under the stream: the transport made the status up.
        assert!(Watcher::resumable(&status(Code::Unknown, false)));
        assert!(Watcher::resumable(&status(Code::Internal, false)));
        for code in [
            Code::OutOfRange,
            Code::InvalidArgument,
            Code::PermissionDenied,
            Code::Unauthenticated,
            Code::FailedPrecondition,
            Code::Internal,
        ] {
            assert!(!Watcher::resumable(&status(code, true)), "{code}");
        }
        assert!(!Watcher::resumable(&Error::Protocol("x".into())));
    }

    fn closed_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[tokio::test]
    async fn gives_up_after_max_reconnects_then_ends() {
        let client = Client::builder()
            .endpoint(format!("127.0.0.1:{}", closed_port()))
            .retry_policy(
                RetryPolicy::new(0).backoff(Duration::from_millis(1), Duration::from_millis(5)),
            )
            .build()
            .unwrap();
        let mut watch = client.watch("a", "42").max_reconnects(3);
        assert_eq!(watch.cursor(), "42");
        let err = watch.next().await.unwrap().unwrap_err();
        assert!(err.is_unavailable() && !err.is_from_server(), "{err:?}");
        assert!(err.message().contains("connection refused"), "{err}");
        assert_eq!(watch.reconnects(), 3);
        assert!(watch.next().await.is_none());
        assert_eq!(watch.cursor(), "42");

        let mut once = client.watch("a", "").max_reconnects(0).into_responses();
        assert!(once.next().await.unwrap().is_err());
        assert_eq!(once.reconnects(), 0);
        assert!(once.next().await.is_none());
    }

    #[tokio::test]
    async fn keeps_reconnecting_by_default_with_backoff() {
        let client = Client::builder()
            .endpoint(format!("127.0.0.1:{}", closed_port()))
            .retry_policy(
                RetryPolicy::new(0).backoff(Duration::from_millis(1), Duration::from_millis(20)),
            )
            .build()
            .unwrap();
        let mut watch = client.watch("a", "0");
        let started = Instant::now();
        let waited = tokio::time::timeout(Duration::from_millis(500), watch.next()).await;
        assert!(waited.is_err(), "still reconnecting, nothing yielded");
        assert!(started.elapsed() >= Duration::from_millis(500));
        assert!(watch.reconnects() >= 3, "{watch:?}");
        // Dropping it stops it: nothing runs in the background.
        drop(watch);
    }
}
