//! Streams of memories and agents: pages fetched on demand, and exports.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tonic::codec::Streaming;

use crate::pb::engram::v1::{Agent, ExportMemoriesResponse, Memory};
use crate::{Error, Result, Stream};

type Page<T> = Pin<Box<dyn Future<Output = Result<(Vec<T>, String)>> + Send>>;
type Fetch<T> = Box<dyn FnMut(String) -> Page<T> + Send>;

/// Walks page tokens: fetches a page, yields its items, fetches the next while a token remains.
pub(crate) struct Pager<T> {
    fetch: Fetch<T>,
    buffer: VecDeque<T>,
    /// The token of the next page to fetch; `None` once the last page was fetched or after an
    /// error.
    next: Option<String>,
    pending: Option<Page<T>>,
}

impl<T> Pager<T> {
    pub(crate) fn new(
        first_token: String,
        fetch: impl FnMut(String) -> Page<T> + Send + 'static,
    ) -> Self {
        Self {
            fetch: Box::new(fetch),
            buffer: VecDeque::new(),
            next: Some(first_token),
            pending: None,
        }
    }

    fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
        loop {
            if let Some(item) = self.buffer.pop_front() {
                return Poll::Ready(Some(Ok(item)));
            }
            if self.pending.is_none() {
                match self.next.take() {
                    None => return Poll::Ready(None),
                    Some(token) => self.pending = Some((self.fetch)(token)),
                }
            }
            let page = self.pending.as_mut().expect("a page is pending");
            let result = ready!(page.as_mut().poll(cx));
            self.pending = None;
            match result {
                Err(err) => return Poll::Ready(Some(Err(err))),
                Ok((items, token)) => {
                    self.buffer.extend(items);
                    if !token.is_empty() {
                        self.next = Some(token);
                    }
                }
            }
        }
    }
}

macro_rules! page_stream {
    ($(#[$doc:meta])* $name:ident, $item:ty) => {
        $(#[$doc])*
        pub struct $name(Pager<$item>);

        impl $name {
            pub(crate) fn new(pager: Pager<$item>) -> Self {
                Self(pager)
            }
        }

        impl Stream for $name {
            type Item = Result<$item>;

            fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
                self.get_mut().0.poll_item(cx)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("buffered", &self.0.buffer.len())
                    .field("done", &(self.0.next.is_none() && self.0.pending.is_none()))
                    .finish()
            }
        }
    };
}

page_stream!(
    /// Every memory of a list request, page after page; made by
    /// [`Client::memories_stream`](crate::Client::memories_stream). Each page is fetched when
    /// the previous one has been read. An error ends the stream after it is yielded.
    MemoryStream,
    Memory
);

page_stream!(
    /// Every agent, page after page; made by
    /// [`Client::agents_stream`](crate::Client::agents_stream). An error ends the stream after
    /// it is yielded.
    AgentStream,
    Agent
);

/// The memories of an export, as the server streams them; made by
/// [`Client::export`](crate::Client::export). Dropping it cancels the export.
pub struct ExportStream {
    inner: Streaming<ExportMemoriesResponse>,
}

impl ExportStream {
    pub(crate) fn new(inner: Streaming<ExportMemoriesResponse>) -> Self {
        Self { inner }
    }
}

impl Stream for ExportStream {
    type Item = Result<Memory>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = ready!(Pin::new(&mut self.get_mut().inner).poll_next(cx));
        Poll::Ready(item.map(|r| {
            match r {
                Ok(message) => message
                    .memory
                    .ok_or_else(|| Error::Protocol("an export message has no memory".into())),
                Err(status) => Err(Error::from(status)),
            }
        }))
    }
}

impl fmt::Debug for ExportStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExportStream").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StreamExt;

    struct Items(Pager<i32>);

    impl Stream for Items {
        type Item = Result<i32>;

        fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.get_mut().0.poll_item(cx)
        }
    }

    #[tokio::test]
    async fn pager_follows_tokens_and_stops_after_errors() {
        let mut calls = 0;
        let pager = Pager::new(String::new(), move |token: String| {
            calls += 1;
            let n = calls;
            Box::pin(async move {
                match token.as_str() {
                    "" => Ok((vec![1, 2], "p2".to_owned())),
                    "p2" => Ok((vec![], "p3".to_owned())),
                    "p3" => Ok((vec![3], String::new())),
                    _ => Err(Error::Protocol(format!("call {n}"))),
                }
            }) as Page<i32>
        });
        let items: Vec<i32> = Items(pager).map(|r| r.unwrap()).collect().await;
        assert_eq!(items, [1, 2, 3]);

        let failing = Pager::new("bad".into(), |_| {
            Box::pin(async { Err(Error::Protocol("boom".into())) }) as Page<i32>
        });
        let all: Vec<Result<i32>> = Items(failing).collect().await;
        assert_eq!(all.len(), 1);
        assert!(all[0].is_err());
    }
}
