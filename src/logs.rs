//! Logs: the filter, the two line formats, and the request id on every line logged while a
//! request is handled.
//!
//! The request id travels in a task-local set around the request's future, not in a tracing
//! span: a span per request cost about 5,700 instructions at the default `info` filter (its
//! field formatted into a string at creation, the registry's slab, an enter and an exit on every
//! poll), about a tenth of a proxied request, to serve lines that a healthy request never
//! writes. The formatters read the task-local only when a line is written, and print it where
//! the span used to be: `request{request_id=…}:` in text, `"span":{"request_id":…,"name":"request"}`
//! in JSON.

use std::fmt;
use std::future::Future;

use nu_ansi_term::{Color, Style};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, JsonFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::registry::LookupSpan;

use crate::web::RequestId;

tokio::task_local! {
    static REQUEST_ID: RequestId;
}

/// The default filter: ours at `info`, sqlx's statement lines only when they warn.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn";

/// Runs `fut` as the handling of one request: every line it logs, on whatever thread polls
/// it, carries `id`.
pub fn in_request<F: Future>(id: RequestId, fut: F) -> impl Future<Output = F::Output> {
    REQUEST_ID.scope(id, fut)
}

/// The request id of the request being handled on this task, if any.
pub fn current_request_id() -> Option<RequestId> {
    REQUEST_ID.try_with(RequestId::clone).ok()
}

/// Checks a `--log` / `GATEHOUSE_LOG` value, so that a typo is refused at the command line
/// with the parser's reason instead of silently running at another level.
pub fn parse_filter(s: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::builder()
        .parse(s)
        .map(|_| s.to_owned())
        .map_err(|e| format!("{e} (e.g. \"{DEFAULT_FILTER}\" or \"gatehouse=debug\")"))
}

/// Logs to stderr from here on. `filter` has been through [`parse_filter`].
pub fn init(filter: &str, json: bool, ansi: bool) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::builder().parse_lossy(filter))
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = if json {
        builder
            .fmt_fields(JsonFields::new())
            .event_format(JsonLine::default())
            .try_init()
    } else {
        builder.event_format(TextLine::default()).try_init()
    };
}

/// tracing-subscriber's full text line, with the request's id after the level:
/// `2026-12-02T07:36:32.123456Z  INFO request{request_id=…}: message key=value`.
pub struct TextLine {
    /// Everything after the level (other spans, the event's fields, the newline).
    rest: format::Format<format::Full, ()>,
}

impl Default for TextLine {
    fn default() -> Self {
        TextLine {
            rest: format::format()
                .without_time()
                .with_level(false)
                .with_target(false),
        }
    }
}

impl<S, N> FormatEvent<S, N> for TextLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let ansi = w.has_ansi_escapes();
        let dimmed = paint(ansi, Style::new().dimmed());
        let bold = paint(ansi, Style::new().bold());
        write!(w, "{}", dimmed.0)?;
        if SystemTime.format_time(&mut w).is_err() {
            w.write_str("<unknown time>")?;
        }
        write!(w, "{} ", dimmed.1)?;
        let (text, color) = match *event.metadata().level() {
            Level::TRACE => ("TRACE", Color::Purple),
            Level::DEBUG => ("DEBUG", Color::Blue),
            Level::INFO => (" INFO", Color::Green),
            Level::WARN => (" WARN", Color::Yellow),
            Level::ERROR => ("ERROR", Color::Red),
        };
        let level = paint(ansi, color.normal());
        write!(w, "{}{text}{} ", level.0, level.1)?;
        if let Some(id) = current_request_id() {
            write!(
                w,
                "{b}request{{{be}request_id={id}{b}}}{be}{d}:{de} ",
                b = bold.0,
                be = bold.1,
                d = dimmed.0,
                de = dimmed.1,
            )?;
        }
        self.rest.format_event(ctx, w, event)
    }
}

/// Start and end codes of `style`, or nothing when the writer takes no escape codes.
fn paint(ansi: bool, style: Style) -> (nu_ansi_term::Prefix, nu_ansi_term::Suffix) {
    let style = if ansi { style } else { Style::new() };
    (style.prefix(), style.suffix())
}

/// tracing-subscriber's JSON line (`timestamp`, `level`, the event's fields flattened beside
/// `message`), with `"span":{"request_id":…,"name":"request"}` while a request is handled.
pub struct JsonLine {
    inner: format::Format<format::Json>,
}

impl Default for JsonLine {
    fn default() -> Self {
        JsonLine {
            inner: format::format()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .with_target(false),
        }
    }
}

impl<S> FormatEvent<S, JsonFields> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // A span of the event's own (a library's, at a verbose filter) is the line's `span`,
        // as tracing-subscriber writes it; the request's is added only where there is none.
        let Some(id) = current_request_id().filter(|_| ctx.lookup_current().is_none()) else {
            return self.inner.format_event(ctx, w, event);
        };
        let mut line = String::with_capacity(256);
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        // The formatter writes one object and a newline; anything else is left as written.
        let Some(object) = line.strip_suffix("}\n") else {
            return w.write_str(&line);
        };
        let id = serde_json::to_string(id.as_str()).map_err(|_| fmt::Error)?;
        let comma = if object.ends_with('{') { "" } else { "," };
        writeln!(
            w,
            "{object}{comma}\"span\":{{\"request_id\":{id},\"name\":\"request\"}}}}"
        )
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Lines {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| io::ErrorKind::Other)?
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Lines {
        fn take(&self) -> Vec<String> {
            let bytes = std::mem::take(&mut *self.0.lock().unwrap());
            String::from_utf8(bytes)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect()
        }
    }

    /// Logs what `work` logs, inside a request with a fresh id and outside any, in one format.
    fn logged(json: bool, ansi: bool, work: fn()) -> (RequestId, Vec<String>, Vec<String>) {
        let out = Lines::default();
        let w = out.clone();
        let builder = tracing_subscriber::fmt()
            .with_env_filter("trace")
            .with_ansi(ansi)
            .with_writer(move || w.clone());
        let dispatch: tracing::Dispatch = if json {
            builder
                .fmt_fields(JsonFields::new())
                .event_format(JsonLine::default())
                .finish()
                .into()
        } else {
            builder.event_format(TextLine::default()).finish().into()
        };
        let id = RequestId::random();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        tracing::dispatcher::with_default(&dispatch, || {
            rt.block_on(in_request(id.clone(), async move {
                work();
                // Across an await: the id is the task's, not the first poll's.
                tokio::task::yield_now().await;
                work();
            }));
        });
        let inside = out.take();
        tracing::dispatcher::with_default(&dispatch, work);
        (id, inside, out.take())
    }

    fn plain_event() {
        tracing::warn!(user = 7, "refused");
    }

    fn event_in_span() {
        let span = tracing::debug_span!("lookup", table = "sessions");
        span.in_scope(|| tracing::info!("miss"));
    }

    #[test]
    fn text_lines_carry_the_request_id_after_the_level() {
        let (id, inside, outside) = logged(false, false, plain_event);
        assert_eq!(inside.len(), 2, "{inside:?}");
        for line in &inside {
            let expected = format!(" WARN request{{request_id={id}}}: refused user=7");
            assert!(line.ends_with(&expected), "{line:?}");
            // The timestamp comes first, as tracing-subscriber writes it.
            assert!(line.starts_with("20") && line.contains('T'), "{line:?}");
        }
        assert_eq!(outside.len(), 1);
        assert!(outside[0].ends_with(" WARN refused user=7"), "{outside:?}");

        let (id, inside, _) = logged(false, false, event_in_span);
        let expected =
            format!(" INFO request{{request_id={id}}}: lookup{{table=\"sessions\"}}: miss");
        assert!(inside[0].ends_with(&expected), "{inside:?}");
    }

    #[test]
    fn coloured_text_keeps_the_request_id() {
        let (id, inside, outside) = logged(false, true, plain_event);
        assert!(inside[0].contains('\u{1b}'), "{inside:?}");
        assert!(
            inside[0].contains(&format!("request_id={id}")),
            "{inside:?}"
        );
        assert!(!outside[0].contains("request"), "{outside:?}");
    }

    #[test]
    fn json_lines_carry_the_request_span() {
        let (id, inside, outside) = logged(true, false, plain_event);
        assert_eq!(inside.len(), 2, "{inside:?}");
        for line in &inside {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["span"]["request_id"], id.as_str(), "{line}");
            assert_eq!(v["span"]["name"], "request", "{line}");
            assert_eq!(v["message"], "refused", "{line}");
            assert_eq!(v["user"], 7, "{line}");
            assert_eq!(v["level"], "WARN", "{line}");
            assert_eq!(line.matches("\"span\"").count(), 1, "{line}");
        }
        let v: serde_json::Value = serde_json::from_str(&outside[0]).unwrap();
        assert!(v.get("span").is_none(), "{v}");
        assert_eq!(v["message"], "refused");

        // An event inside a span of its own has that span, once, as tracing-subscriber
        // writes it.
        let (_, inside, _) = logged(true, false, event_in_span);
        let v: serde_json::Value = serde_json::from_str(&inside[0]).unwrap();
        assert_eq!(v["span"]["name"], "lookup", "{v}");
        assert_eq!(inside[0].matches("\"span\"").count(), 1, "{}", inside[0]);
    }

    #[test]
    fn a_request_id_from_a_proxy_is_escaped_in_json() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-request-id", http::HeaderValue::from_static("a\"b\\c"));
        let ctx = crate::web::RequestCtx::new(
            "10.0.0.1:1".parse().unwrap(),
            false,
            &headers,
            &["10.0.0.0/8".parse().unwrap()],
            &http::HeaderName::from_static("x-request-id"),
        );
        let out = Lines::default();
        let w = out.clone();
        let dispatch: tracing::Dispatch = tracing_subscriber::fmt()
            .with_writer(move || w.clone())
            .fmt_fields(JsonFields::new())
            .event_format(JsonLine::default())
            .finish()
            .into();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let id = ctx.request_id.clone();
        tracing::dispatcher::with_default(&dispatch, || {
            rt.block_on(in_request(id, async { tracing::info!("hello") }));
        });
        let lines = out.take();
        let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(
            v["span"]["request_id"],
            ctx.request_id.as_str(),
            "{}",
            lines[0]
        );
    }

    #[test]
    fn filters_are_checked() {
        assert!(parse_filter(DEFAULT_FILTER).is_ok());
        assert!(parse_filter("gatehouse[request{request_id}]=debug").is_ok());
        let e = parse_filter("gatehouse=loud").unwrap_err();
        assert!(e.contains("gatehouse=debug"), "{e}");
    }
}
