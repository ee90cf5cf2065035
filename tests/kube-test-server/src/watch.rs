//! Watch streams: history replay or synthetic ADDED events, then live events
//! filtered by namespace and selectors (with ADDED/DELETED on selector
//! transitions), bookmarks, timeouts, and the drop-every-watch fault.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use serde_json::{json, Value};
use tokio::sync::{broadcast, watch};
use tokio::time::{sleep_until, Instant, Interval};

use crate::error::ApiError;
use crate::meta::{FieldSelector, LabelSelector};
use crate::resources::ResourceDef;
use crate::store::{EventType, WatchEvent, WatchStart};

/// What a watcher sees.
#[derive(Debug, Clone)]
pub struct Filter {
    /// Only this namespace.
    pub namespace: Option<String>,
    /// Label selector.
    pub labels: LabelSelector,
    /// Field selector.
    pub fields: FieldSelector,
}

impl Filter {
    /// Whether an object passes.
    pub fn matches(&self, obj: &Value) -> bool {
        if let Some(ns) = &self.namespace {
            if crate::meta::meta_str(obj, "namespace") != ns {
                return false;
            }
        }
        self.labels.matches(obj) && self.fields.matches(obj)
    }
}

/// Watch request options.
#[derive(Debug, Clone)]
pub struct WatchOpts {
    /// Send BOOKMARK events.
    pub bookmarks: bool,
    /// Interval between bookmarks.
    pub bookmark_interval: Duration,
    /// When the server ends the watch.
    pub timeout: Duration,
    /// `sendInitialEvents=true`: end the initial events with a bookmark
    /// annotated `k8s.io/initial-events-end`.
    pub initial_events_end: bool,
}

enum Step {
    Deadline,
    Dropped,
    Tick,
    Event(Option<Arc<WatchEvent>>),
}

struct State {
    pending: VecDeque<Bytes>,
    rx: broadcast::Receiver<Arc<WatchEvent>>,
    drops: watch::Receiver<u64>,
    deadline: Instant,
    ticker: Option<Interval>,
    filter: Filter,
    def: Arc<ResourceDef>,
    api_version: String,
    last_rv: u64,
    bookmarks: bool,
    done: bool,
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut out = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    out.push(b'\n');
    Bytes::from(out)
}

/// The single ERROR event the real server sends for an expired version.
pub fn error_line(err: &ApiError) -> Bytes {
    line("ERROR", &err.to_status())
}

impl State {
    fn present(&self, obj: &Value) -> Value {
        let mut o = crate::events::present(&self.def, obj).into_owned();
        o["apiVersion"] = json!(self.api_version);
        o
    }

    fn bookmark(&self, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": self.last_rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        line(
            "BOOKMARK",
            &json!({"kind": self.def.kind, "apiVersion": self.api_version, "metadata": meta}),
        )
    }

    fn translate(&mut self, ev: &WatchEvent) {
        self.last_rv = self.last_rv.max(ev.rv);
        if ev.gr != self.def.store_gr() {
            return;
        }
        let now = self.filter.matches(&ev.object);
        let kind = match ev.kind {
            EventType::Added | EventType::Deleted => now.then_some(ev.kind),
            EventType::Modified => {
                let before = ev.old.as_deref().is_some_and(|o| self.filter.matches(o));
                match (before, now) {
                    (true, true) => Some(EventType::Modified),
                    (false, true) => Some(EventType::Added),
                    (true, false) => Some(EventType::Deleted),
                    (false, false) => None,
                }
            }
        };
        if let Some(kind) = kind {
            let obj = self.present(&ev.object);
            self.pending.push_back(line(kind.as_str(), &obj));
        }
    }
}

/// The streaming body of a watch.
pub fn body(
    start: WatchStart,
    def: Arc<ResourceDef>,
    version: &str,
    filter: Filter,
    opts: WatchOpts,
    mut drops: watch::Receiver<u64>,
) -> Body {
    drops.borrow_and_update();
    let mut state = State {
        pending: VecDeque::new(),
        rx: start.rx,
        drops,
        deadline: Instant::now() + opts.timeout,
        ticker: opts.bookmarks.then(|| {
            let mut t = tokio::time::interval_at(
                Instant::now() + opts.bookmark_interval,
                opts.bookmark_interval,
            );
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        }),
        api_version: def.api_version(version),
        def,
        filter,
        last_rv: start.rv,
        bookmarks: opts.bookmarks,
        done: false,
    };
    let initial_max = start.initial.iter().map(|e| e.rv).max().unwrap_or(0);
    for ev in &start.initial {
        state.translate(ev);
    }
    state.last_rv = state.last_rv.max(initial_max).max(start.rv);
    if opts.initial_events_end && opts.bookmarks {
        let b = state.bookmark(true);
        state.pending.push_back(b);
    }
    let stream = futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(b) = st.pending.pop_front() {
                return Some((Ok::<Bytes, Infallible>(b), st));
            }
            if st.done {
                return None;
            }
            let step = {
                let ticker = &mut st.ticker;
                let tick = async move {
                    match ticker {
                        Some(t) => {
                            t.tick().await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                };
                tokio::select! {
                    _ = sleep_until(st.deadline) => Step::Deadline,
                    _ = st.drops.changed() => Step::Dropped,
                    _ = tick => Step::Tick,
                    r = st.rx.recv() => Step::Event(r.ok()),
                }
            };
            match step {
                Step::Deadline => {
                    if st.bookmarks {
                        let b = st.bookmark(false);
                        st.pending.push_back(b);
                    }
                    st.done = true;
                }
                Step::Dropped => st.done = true,
                Step::Tick => {
                    let b = st.bookmark(false);
                    st.pending.push_back(b);
                }
                Step::Event(Some(ev)) => st.translate(&ev),
                // A watcher too slow for the buffer is closed; it resumes
                // from its last version out of the history.
                Step::Event(None) => st.done = true,
            }
        }
    });
    Body::from_stream(stream)
}
