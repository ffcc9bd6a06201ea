//! `/stream?bytes=N` (a generated download) and `/status/<code>`.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, SizeHint};

use super::{ResponseBody, empty, query_param, response, text};

/// Size of each chunk `/stream` emits.
const STREAM_CHUNK: usize = 64 * 1024;

/// `/stream` refuses more than this; the limit only guards against typos
/// turning into a download that effectively never ends.
const MAX_STREAM_BYTES: u64 = 1 << 40;

/// Period of the `/stream` byte pattern. A prime, so it never lines up with
/// power-of-two chunk or buffer sizes and misplaced chunks become visible.
const PATTERN_PERIOD: usize = 251;

/// One chunk's worth of pattern plus one extra period, so any chunk can be a
/// zero-copy slice starting at the stream's current phase.
static PATTERN: [u8; STREAM_CHUNK + PATTERN_PERIOD] = build_pattern();

// Evaluated at compile time, so the large array never lives on a runtime stack.
#[allow(clippy::large_stack_arrays)]
const fn build_pattern() -> [u8; STREAM_CHUNK + PATTERN_PERIOD] {
    let mut out = [0u8; STREAM_CHUNK + PATTERN_PERIOD];
    let mut i = 0;
    while i < out.len() {
        // `try_from` isn't usable in a const fn; the value is always < 251.
        #[allow(clippy::cast_possible_truncation)]
        {
            out[i] = (i % PATTERN_PERIOD) as u8;
        }
        i += 1;
    }
    out
}

/// A body of `remaining` pattern bytes, produced lazily in slices of the
/// static pattern, so even a multi-gigabyte response allocates nothing.
struct PatternBody {
    /// Position within the pattern period where the next chunk starts.
    phase: usize,
    remaining: u64,
}

impl Body for PatternBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let len = usize::try_from(self.remaining).map_or(STREAM_CHUNK, |r| r.min(STREAM_CHUNK));
        // phase < PATTERN_PERIOD and len <= STREAM_CHUNK, so this is in bounds.
        let chunk = Bytes::from_static(&PATTERN[self.phase..self.phase + len]);
        self.phase = (self.phase + len) % PATTERN_PERIOD;
        self.remaining -= len as u64;
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        // An exact hint makes hyper send Content-Length instead of chunking.
        SizeHint::with_exact(self.remaining)
    }
}

pub(super) fn stream(query: Option<&str>) -> Response<ResponseBody> {
    let Some(raw) = query_param(query, "bytes") else {
        return text(StatusCode::BAD_REQUEST, "Usage: /stream?bytes=N\n");
    };
    match raw.parse::<u64>() {
        Ok(n) if n <= MAX_STREAM_BYTES => response(
            StatusCode::OK,
            "application/octet-stream",
            PatternBody {
                phase: 0,
                remaining: n,
            }
            .boxed(),
        ),
        Ok(_) => text(
            StatusCode::BAD_REQUEST,
            format!("bytes must be at most {MAX_STREAM_BYTES}\n"),
        ),
        Err(_) => text(
            StatusCode::BAD_REQUEST,
            "bytes must be a non-negative whole number\n",
        ),
    }
}

pub(super) fn status(code: &str) -> Response<ResponseBody> {
    let Some(status) = code
        .parse::<u16>()
        .ok()
        .and_then(|c| StatusCode::from_u16(c).ok())
    else {
        return text(
            StatusCode::BAD_REQUEST,
            "Usage: /status/<code>, code in 200..=999\n",
        );
    };
    if status.is_informational() {
        // A 1xx can't be a final response; hyper would mangle the exchange.
        return text(
            StatusCode::BAD_REQUEST,
            "1xx codes cannot be a final response\n",
        );
    }
    if matches!(status.as_u16(), 204 | 205 | 304) {
        // These statuses must not carry content.
        return response(status, "text/plain; charset=utf-8", empty());
    }
    let reason = status.canonical_reason().unwrap_or("");
    text(status, format!("{} {reason}\n", status.as_u16()))
}
