//! `--log-format json`: one flat JSON object per line on stderr.
//!
//! The shape (documented in `--help` and the README) is `ts`, `level` and `msg`, then the
//! fields of every span the event happened in (`rollout`, `ring`, `cluster`), then the event's
//! own fields (`kind`, `actor`, `at`), all top-level keys: a log pipeline filters on
//! `.rollout == "k8s-1.33"` without knowing how spans nest. tracing-subscriber's JSON formatter
//! nests span fields under `span`/`spans` and names the keys `timestamp`/`message`, hence this
//! layer.

use std::io::Write as _;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Record};
use tracing::{Event, Id, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;

/// The keys every line has; span and event fields never replace them.
const RESERVED: [&str; 3] = ["ts", "level", "msg"];

/// Install the JSON-lines subscriber for the whole process (info and above).
pub fn init_json() {
    let subscriber = tracing_subscriber::registry()
        .with(JsonLines)
        .with(LevelFilter::INFO);
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// The layer writing one flat JSON object per event.
struct JsonLines;

/// A span's fields, kept in its extensions until the span closes.
struct SpanFields(Map<String, Value>);

/// Collects fields as JSON values; tracing's `message` becomes `msg`.
struct Collect<'a>(&'a mut Map<String, Value>);

impl Collect<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        let key = match field.name() {
            "message" => "msg",
            other => other,
        };
        self.0.insert(key.to_owned(), value);
    }
}

impl Visit for Collect<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, Value::from(format!("{value:?}")));
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

impl<S> Layer<S> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Map::new();
        attrs.record(&mut Collect(&mut fields));
        span.extensions_mut().insert(SpanFields(fields));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(SpanFields(fields)) = ext.get_mut::<SpanFields>() {
            values.record(&mut Collect(fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut line = Map::new();
        // Outermost span first, so that an inner span's `ring` wins over an outer one's.
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(SpanFields(fields)) = span.extensions().get::<SpanFields>() {
                    line.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
        }
        let mut own = Map::new();
        event.record(&mut Collect(&mut own));
        let msg = own.remove("msg").unwrap_or_else(|| Value::from(""));
        line.extend(own);
        for key in RESERVED {
            line.remove(key);
        }
        let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        line.insert("ts".to_owned(), Value::from(ts));
        line.insert(
            "level".to_owned(),
            Value::from(level_name(*event.metadata().level())),
        );
        line.insert("msg".to_owned(), msg);
        let mut text = Value::Object(line).to_string();
        text.push('\n');
        // One write per line, so that lines from several threads never interleave.
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}
